import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import "../../src/transports/mod.ts";
import "../../src/processors/mod.ts";
import { loadConfig, parseConfig } from "../../src/config/load.ts";
import { ConfigError } from "../../src/errors.ts";
import { assert, assertEquals, assertThrows } from "../_assert.ts";

const SAMPLE = path.join(import.meta.dirname!, "../testdata/original/config.sample.xml");

function tmp(): string {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "fc-cfg-")));
  for (const d of ["htdocs/drupal/modules", "htdocs/drupal/misc", "Downloads"]) {
    fs.mkdirSync(path.join(root, d), { recursive: true });
  }
  return root;
}

function config(body: string, root: string): string {
  return `<?xml version="1.0"?>
<config>
  <sources><source name="a" scanPath="${root}" /></sources>
  <servers>
    <server name="local" transporter="symlink_or_copy">
      <location>${root}/out</location>
      <url>http://cdn/</url>
    </server>
  </servers>
  <rules>${body}</rules>
</config>`;
}

function issues(xml: string, file = "/x/config.xml"): string[] {
  try {
    parseConfig(xml, file);
  } catch (e) {
    if (e instanceof ConfigError) return e.issues.map((i) => `${i.line}: ${i.path}: ${i.message}`);
    throw e;
  }
  return [];
}

Deno.test("loadConfig() accepts the original sample config unchanged", () => {
  const root = tmp();
  try {
    const file = path.join(root, "config.xml");
    fs.writeFileSync(file, fs.readFileSync(SAMPLE, "utf8").replaceAll("@ROOT@", root));
    const c = loadConfig(file);
    assertEquals(c.sources.map((s) => s.name), ["drupal", "downloads"]);
    assertEquals(c.ignoredDirs, ["CVS", ".svn"]);
    assertEquals(c.sources[0]!.basePath, "/drupal/");
    assertEquals(c.servers.map((s) => [s.name, s.transporter, s.maxConnections]), [
      ["origin pull cdn", "symlink_or_copy", 0],
      ["ftp push cdn", "ftp", 5],
    ]);
    assertEquals(c.rules.length, 3);
    assertEquals(c.rules[0]!.filter!.paths, ["modules", "misc"]);
    assertEquals(c.rules[0]!.processors.map((p) => p.name), [
      "image_optimizer.KeepFilename",
      "yui_compressor.YUICompressor",
      "google_closure_compiler.GoogleClosureCompiler",
      "link_updater.CSSURLUpdater",
      "unique_filename.Mtime",
    ]);
    assertEquals(c.rules[1]!.deletionDelay, 60);
    assertEquals(c.rules[1]!.filter!.size, { conditionType: "minimum", bytes: 1000000 });
    assertEquals(c.rules[2]!.deletionDelay, undefined);
    assert(c.rules[2]!.filter!.pattern!.test(`${root}/Downloads/x.720p.mkv`));
    assert(c.secrets.includes("daemontest"), "passwords are secrets");
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

Deno.test("parseConfig() reports XML syntax errors with the line", () => {
  const found = issues("<config>\n  <sources>\n</config>");
  assertEquals(found.length, 1);
  assert(found[0]!.startsWith("3: xml"), found[0]);
});

Deno.test("parseConfig() names the element left open when a close tag skips it", () => {
  const found = issues(
    '<config>\n  <servers>\n    <server name="a">\n      <host>x</host>\n  </servers>\n</config>',
  );
  assertEquals(found.length, 1);
  assert(found[0]!.startsWith("5: xml"), found[0]);
  assert(
    found[0]!.includes(
      "</servers> closes <servers> from line 2, but <server> opened on line 3 is not closed",
    ),
    found[0],
  );
});

Deno.test("parseConfig() reports every problem at once, each with line and element", () => {
  const root = tmp();
  try {
    const xml = `<?xml version="1.0"?>
<config>
  <sources ignoredDirs="a/b">
    <source name="a" scanPath="${root}" colour="red" />
    <source name="a" scanPath="${root}/missing" />
    <source name="b c" />
  </sources>
  <servers>
    <server name="s" transporter="symlink_or_copy" maxConnections="many">
      <location>${root}/out</location>
      <urll>http://x/</urll>
    </server>
    <server name="t" transporter="nope" />
    <server name="u" transporter="sftpp" />
  </servers>
  <rules>
    <rule for="zzz" label="x" fileDeletionDelayAfterSync="soon">
      <filter>
        <pattern>([unclosed</pattern>
        <size conditionType="biggest">abc</size>
        <colour>red</colour>
      </filter>
      <processorChain><processor name="nope.Nope" /></processorChain>
      <destinations><destination server="nowhere" path="../up" /></destinations>
    </rule>
    <rule for="a"><filter /></rule>
  </rules>
  <extra />
</config>`;
    const found = issues(xml);
    const expect = [
      /^3: config\/sources@ignoredDirs?: Invalid ignored directory "a\/b"/,
      /^4: .*source\["a"\]@colour: Unknown attribute "colour"/,
      /^5: .*@name: Duplicate source name "a"/,
      /^5: .*@scanPath: scanPath ".*missing" does not exist/,
      /^6: .*@name: Invalid source name "b c"/,
      /^6: .*Missing attribute "scanPath"/,
      /^9: .*server\["s"\]@maxConnections: maxConnections must be a whole number/,
      /^11: .*Unknown setting "urll"; did you mean "url"\?/,
      /^9: .*Missing required setting "url"/,
      /^13: .*Unknown transporter "nope"/,
      /^14: .*Unknown transporter "sftpp"; did you mean "sftp"\?/,
      /^17: .*@for: Rule is for unknown source "zzz"/,
      /^17: .*fileDeletionDelayAfterSync must be a whole number/,
      /^19: .*pattern: Invalid regular expression/,
      /^20: .*conditionType must be "minimum" or "maximum"/,
      /^20: .*Size must be a whole number of bytes/,
      /^21: .*Unknown element <colour> in <filter>/,
      /^23: .*Unknown processor "nope.Nope"/,
      /^24: .*Destination names unknown server "nowhere"/,
      /^26: .*A <filter> must set at least one condition/,
      /^26: .*Missing element <destinations>/,
      /^28: .*Unknown element <extra> in <config>/,
    ];
    for (const re of expect) {
      assert(found.some((f) => re.test(f)), `expected ${re} in:\n${found.join("\n")}`);
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

Deno.test("parseConfig() refuses '..' in destination paths", () => {
  const root = tmp();
  try {
    const found = issues(
      config(
        `<rule for="a"><destinations><destination server="local" path="a/../../etc" /></destinations></rule>`,
        root,
      ),
    );
    assert(
      found.some((f) => f.includes('must not contain "." or ".." segments')),
      found.join("\n"),
    );
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

Deno.test("parseConfig() substitutes ${env:…} and ${file:…} secrets and reports missing ones", () => {
  const root = tmp();
  try {
    fs.writeFileSync(path.join(root, "secret.txt"), "from-a-file\n");
    const xml = config(
      `<rule for="a"><destinations><destination server="local" path="\${env:FC_TEST_DEST}" /></destinations></rule>`,
      root,
    ).replace("<url>http://cdn/</url>", "<url>http://cdn/${file:secret.txt}/</url>");
    Deno.env.set("FC_TEST_DEST", "static");
    const file = path.join(root, "config.xml");
    fs.writeFileSync(file, xml);
    const c = loadConfig(file);
    assertEquals(c.servers[0]!.settings.url, "http://cdn/from-a-file/");
    assert(c.secrets.includes("from-a-file"));
    const missing = xml.replace("${file:secret.txt}", "${env:FC_TEST_SURELY_UNSET}");
    fs.writeFileSync(file, missing);
    const e = assertThrows(() => loadConfig(file), ConfigError);
    assert(e.message.includes('Environment variable "FC_TEST_SURELY_UNSET" is not set'), e.message);
  } finally {
    Deno.env.delete("FC_TEST_DEST");
    fs.rmSync(root, { recursive: true, force: true });
  }
});

Deno.test("parseConfig() reads <settings>, with the original's names as aliases", () => {
  const root = tmp();
  try {
    const xml = config(
      `<rule for="a"><destinations><destination server="local" /></destinations></rule>`,
      root,
    )
      .replace(
        "</config>",
        `<settings><MAX_SIMULTANEOUS_TRANSPORTERS>3</MAX_SIMULTANEOUS_TRANSPORTERS><rescanInterval>0</rescanInterval>
         <dataDir>state</dataDir><PID_FILE>run/fc.pid</PID_FILE></settings></config>`,
      );
    const c = parseConfig(xml, path.join(root, "config.xml"));
    assertEquals(c.settings.maxSimultaneousTransporters, 3);
    assertEquals(c.settings.rescanInterval, 0);
    assertEquals(c.settings.dataDir, path.join(root, "state"));
    assertEquals(c.settings.pidFile, path.join(root, "run/fc.pid"));
    assertEquals(c.settings.deleteGuardShare, 0.5);
    const bad = xml.replace(
      "<rescanInterval>0</rescanInterval>",
      "<rescanIntervall>0</rescanIntervall>",
    );
    const found = issues(bad, path.join(root, "config.xml"));
    assert(
      found.some((f) =>
        f.includes('Unknown setting "rescanIntervall"; did you mean "rescanInterval"?')
      ),
      found.join("\n"),
    );
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

Deno.test("loadConfig() names an unreadable or missing file", () => {
  const e = assertThrows(() => loadConfig("/nonexistent/config.xml"), ConfigError);
  assert(e.message.includes("does not exist"), e.message);
});
