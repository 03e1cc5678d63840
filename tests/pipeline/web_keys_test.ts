/**
 * The keys under which synced files are published for web applications,
 * checked against PHP's own `rawurlencode()`, and the settings that place
 * the web application databases.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import "../../src/transports/mod.ts";
import "../../src/processors/mod.ts";
import { parseConfig } from "../../src/config/load.ts";
import { ConfigError } from "../../src/errors.ts";
import { drupalEncodePath, rawUrlEncode, webKeys } from "../../src/pipeline/web_keys.ts";
import { WebAccess } from "../../src/pipeline/web_access.ts";
import { Store } from "../../src/store/store.ts";
import { logger } from "../../src/log.ts";
import { DatabaseSync } from "node:sqlite";
import { assert, assertEquals, assertThrows } from "../_assert.ts";
import { syncedRow } from "../_synced_row.ts";

const NAMES = ["my logo.png", "café Ünïcode.jpg", "(odd)!'*~.gif", "x+y=z&a;b,c@d$e#f%g.txt"];

Deno.test("rawUrlEncode() matches PHP's rawurlencode()", async () => {
  const out = await new Deno.Command("php", {
    args: [
      "-r",
      'foreach (json_decode($argv[1]) as $n) echo rawurlencode($n), "\\n";',
      JSON.stringify(NAMES),
    ],
    stdout: "piped",
  }).output();
  assertEquals(out.code, 0);
  assertEquals(new TextDecoder().decode(out.stdout), NAMES.map(rawUrlEncode).join("\n") + "\n");
  assertEquals(drupalEncodePath("sub dir/a b.png"), "sub%20dir/a%20b.png");
});

function site(settings = "", sourceAttrs = ""): { root: string; xml: string } {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "fc-keys-")));
  fs.mkdirSync(path.join(root, "drupal/sites/default"), { recursive: true });
  fs.mkdirSync(path.join(root, "files"));
  fs.symlinkSync(path.join(root, "files"), path.join(root, "drupal/sites/default/files"));
  const xml = `<?xml version="1.0"?>
<config>
  <sources><source name="f" scanPath="drupal/sites/default/files" ${sourceAttrs} /></sources>
  <servers><server name="local" transporter="symlink_or_copy"><location>${root}/out</location><url>http://cdn/</url></server></servers>
  <rules><rule for="f"><destinations><destination server="local" /></destinations></rule></rules>
  <settings>${settings}</settings>
</config>`;
  return { root, xml };
}

Deno.test("webKeys() adds the symlinked path and the percent-encoded path below the Drupal root", () => {
  const { root, xml } = site("", `documentRoot="drupal" basePath="/"`);
  try {
    const c = parseConfig(xml, path.join(root, "config.xml"));
    const real = path.join(root, "files", "sub dir", "my logo.png");
    const keys = webKeys(c, real);
    assertEquals(keys[0], real);
    const files = path.join(root, "drupal/sites/default/files");
    assert(keys.includes(`${files}/sub dir/my logo.png`), keys.join("\n"));
    assert(keys.includes(`${files}/sub%20dir/my%20logo.png`), keys.join("\n"));
    // A file outside every source has only its own path.
    assertEquals(webKeys(c, "/elsewhere/a b.png"), ["/elsewhere/a b.png"]);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

Deno.test("parseConfig() places the web databases; SYNCED_FILES_DB and PERSISTENT_DATA_DB are aliases", () => {
  const { root, xml } = site(
    `<SYNCED_FILES_DB>web/synced_files.db</SYNCED_FILES_DB><PERSISTENT_DATA_DB>web/p.db</PERSISTENT_DATA_DB>
     <syncedFilesDbGroup>www-data</syncedFilesDbGroup><keepReplaced>60</keepReplaced>`,
  );
  try {
    const c = parseConfig(xml, path.join(root, "config.xml"));
    assertEquals(c.settings.syncedFilesDb, path.join(root, "web/synced_files.db"));
    assertEquals(c.settings.persistentDataDb, path.join(root, "web/p.db"));
    assertEquals(c.settings.syncedFilesDbGroup, "www-data");
    assertEquals(c.settings.keepReplaced, 60);
    assertEquals(parseConfig(site().xml, path.join(root, "c.xml")).settings.keepReplaced, 86400);
    const e = assertThrows(
      () =>
        parseConfig(
          xml.replace("www-data", "no-such-group-xyz").replace("web/p.db", "web/synced_files.db")
            .replace("<keepReplaced>60", "<keepReplaced>-1"),
          path.join(root, "config.xml"),
        ),
      ConfigError,
    );
    assert(e.message.includes('no group "no-such-group-xyz"'), e.message);
    assert(e.message.includes("must name different files"), e.message);
    assert(/keepReplaced/.test(e.message), e.message);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

Deno.test("WebAccess publishes the keys of a reloaded configuration for every record", () => {
  const { root, xml } = site();
  const data = path.join(root, "data");
  const store = new Store(data);
  try {
    const viaLink = parseConfig(xml, path.join(root, "config.xml"));
    const direct = parseConfig(
      xml.replace('scanPath="drupal/sites/default/files"', 'scanPath="files"'),
      path.join(root, "config.xml"),
    );
    let current = direct;
    const web = new WebAccess(() => current, data, store, logger("test"));
    const real = path.join(root, "files", "a b.png");
    store.putSynced(syncedRow(real, { url: "http://cdn/a%20b.png", server: "local" }));
    const keys = () => {
      const db = new DatabaseSync(path.join(data, "synced_files.db"), { readOnly: true });
      try {
        return (db.prepare("SELECT input_file FROM synced_files ORDER BY 1").all() as {
          input_file: string;
        }[]).map((r) => r.input_file);
      } finally {
        db.close();
      }
    };
    web.refresh(true);
    const link = path.join(root, "drupal/sites/default/files/a b.png");
    assert(!keys().includes(link), keys().join("\n"));
    current = viaLink;
    web.refresh();
    assert(keys().includes(link), keys().join("\n"));
    web.close();
  } finally {
    store.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
});
