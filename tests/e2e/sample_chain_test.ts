/**
 * The original's sample rule end to end: image_optimizer, YUI compressor,
 * Closure compiler, CSS URL updater and unique file names, through the
 * daemon to a local folder and to SFTP. The published stylesheets must only
 * reference URLs that exist at their destination, every name must be
 * unique, and images must be pixel-identical and not larger.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { cli, workspace } from "../_harness.ts";
import { sftpRemote } from "../reliability/_remote.ts";
import { djpeg, gifFrames, normaliseAlpha, pngToRgba, SITE } from "../processors/_helpers.ts";
import { assert, assertEquals } from "../_assert.ts";

const CHAIN = `<processorChain>
        <processor name="image_optimizer.KeepFilename" />
        <processor name="yui_compressor.YUICompressor" />
        <processor name="google_closure_compiler.GoogleClosureCompiler" />
        <processor name="link_updater.CSSURLUpdater" />
        <processor name="unique_filename.Mtime" />
      </processorChain>`;

/** Every file below `root`, relative, `/`-separated. */
function files(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(path.relative(root, p).split(path.sep).join("/"));
    }
  };
  walk(root);
  return out.sort();
}

/**
 * The published name of a source file among `got`: `name_<mtime>.ext` in the
 * same directory, or `name_<mtime>_<8 hex>.ext` for a stylesheet that embeds
 * other files' URLs (the hash of its content).
 */
function published(got: Set<string>, srcRoot: string, rel: string): string {
  const st = fs.statSync(path.join(srcRoot, rel));
  const ext = path.posix.extname(rel);
  const plain = `${rel.slice(0, -ext.length)}_${Math.floor(st.mtimeMs / 1000)}`;
  if (ext === ".css") {
    const hashed = [...got].find((g) =>
      g.startsWith(plain + "_") && g.endsWith(ext) &&
      /^[0-9a-f]{8}$/.test(g.slice(plain.length + 1, -ext.length))
    );
    if (hashed) return hashed;
  }
  return plain + ext;
}

function pixels(file: string, bytes: Uint8Array): string {
  const ext = path.extname(file).toLowerCase();
  if (ext === ".png") return JSON.stringify(Array.from(normaliseAlpha(pngToRgba(bytes)).data));
  if (ext === ".gif") return JSON.stringify(gifFrames(bytes).map((f) => Array.from(f.data)));
  if (ext === ".jpg") return JSON.stringify(Array.from(djpeg(bytes)));
  throw new Error(`no decoder for ${file}`);
}

Deno.test("the original sample chain publishes consistent CSS, unique names and lossless images to local and SFTP", async () => {
  const remote = await sftpRemote();
  const ws = workspace("fc-chain-");
  try {
    const site = path.join(ws.root, "site");
    fs.cpSync(SITE, site, { recursive: true });
    // Every stylesheet and image, so link_updater never waits for files that are not synced.
    const filter =
      `<filter><extensions>css:js:png:jpg:gif:svg:eot:ttf:woff:woff2</extensions></filter>`;
    fs.writeFileSync(
      ws.config,
      `<?xml version="1.0"?>
<config>
  <sources><source name="site" scanPath="${site}" documentRoot="${site}" basePath="/shop/" /></sources>
  <servers>
    <server name="local" transporter="symlink_or_copy"><location>${ws.dst}</location><url>http://local.cdn.test/</url></server>
    ${remote.serverXml("sftp")}
  </servers>
  <rules>
    <rule for="site" label="CSS, JS, images">
      ${filter}
      ${CHAIN}
      <destinations><destination server="local" /><destination server="sftp" /></destinations>
    </rule>
  </rules>
  <settings><dataDir>${ws.data}</dataDir></settings>
</config>`,
    );
    const r = await cli(["sync", "--config", ws.config, "--once"], { FILECONVEYOR_LOG: "info" });
    assertEquals(r.code, 0, r.stderr.slice(-4000));

    const sftpRoot = path.join(
      (remote as unknown as { info: { root: string } }).info.root,
      (remote as unknown as { dir: string }).dir,
    );
    const targets = [
      { name: "local", root: ws.dst, base: "http://local.cdn.test/" },
      {
        name: "sftp",
        root: sftpRoot,
        base: /<url>([^<]+)<\/url>/.exec(remote.serverXml("sftp"))![1]!,
      },
    ];
    const sources = files(site).filter((f) => /\.(css|js|png|jpg|gif|svg|eot|ttf|woff2?)$/.test(f));
    for (const t of targets) {
      const got = new Set(files(t.root));
      // Unique names: every file is published as name_<mtime>.ext (stylesheets with a content
      // hash too) and nothing else is there.
      const expected = sources.map((f) => published(got, site, f));
      assertEquals([...got].sort(), expected.sort(), `${t.name}: published names`);
      for (const f of sources.filter((f) => f.endsWith(".css"))) {
        const css = fs.readFileSync(path.join(t.root, published(got, site, f)), "utf8");
        const urls = [...css.matchAll(/url\(\s*["']?([^"')\s]+)|@import\s+["']([^"']+)/g)].map((
          m,
        ) => m[1] ?? m[2]!);
        const ours = urls.filter((u) => u.startsWith(t.base));
        assert(
          ours.length > 0 || !/url\(/.test(fs.readFileSync(path.join(site, f), "utf8")),
          `${t.name}: ${f} rewrote nothing`,
        );
        for (const u of ours) {
          const rel = decodeURIComponent(u.slice(t.base.length).replace(/[?#].*$/, ""));
          assert(got.has(rel), `${t.name}: ${f} references ${u}, which is not at the destination`);
        }
        // No URL points at the source tree's relative paths any more, except ones that do not exist.
        for (const u of urls.filter((u) => !/^(https?:|data:|#|\/\/)/.test(u))) {
          const abs = u.startsWith("/")
            ? path.join(site, u.replace(/[?#].*$/, ""))
            : path.join(site, path.dirname(f), u.replace(/[?#].*$/, ""));
          assert(
            !fs.existsSync(abs),
            `${t.name}: ${f} still references the existing source file ${u}`,
          );
        }
      }
      for (const f of sources.filter((f) => /\.(png|jpg|gif)$/.test(f))) {
        const before = fs.readFileSync(path.join(site, f));
        const after = fs.readFileSync(path.join(t.root, published(got, site, f)));
        assert(
          after.length <= before.length,
          `${t.name}: ${f} grew from ${before.length} to ${after.length}`,
        );
        assertEquals(pixels(f, after), pixels(f, before), `${t.name}: ${f} pixels`);
      }
      // Minified scripts still run the same (the processor tests run them; here: smaller or equal).
      for (const f of sources.filter((f) => f.endsWith(".js") && !f.endsWith(".min.js"))) {
        const before = fs.statSync(path.join(site, f)).size;
        const after = fs.statSync(path.join(t.root, published(got, site, f))).size;
        assert(after < before, `${t.name}: ${f} was not minified (${before} → ${after})`);
      }
    }
  } finally {
    await remote.cleanup();
    ws.cleanup();
  }
});
