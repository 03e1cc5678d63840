/**
 * Cache-safe publishing with unique names: when an image a stylesheet
 * refers to changes, the stylesheet gets a new name pointing at the new
 * image, published only once that image is there; the old stylesheet and
 * the old image stay for `keepReplaced` seconds (cached pages and CDN edges
 * still use them), survive a kill -9, and are deleted afterwards. For each
 * of unique_filename.Mtime, .MD5 and .ContentHash.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { assert, assertEquals } from "../_assert.ts";
import { cli, localConfig, workspace, write } from "../_harness.ts";
import { start, until } from "../reliability/_util.ts";

const GRACE_S = 10;

function names(dir: string, re: RegExp): string[] {
  try {
    return fs.readdirSync(dir).filter((n) => re.test(n)).sort();
  } catch {
    return [];
  }
}

for (const unique of ["Mtime", "MD5", "ContentHash"]) {
  Deno.test(`unique_filename.${unique}: a changed image gives its stylesheet a new name; old versions stay for the grace period`, async () => {
    const ws = workspace("fc-cache-");
    try {
      write(path.join(ws.src, "css", "style.css"), "body { background: url(../img/bg.png); }\n");
      write(path.join(ws.src, "img", "bg.png"), "first image");
      fs.writeFileSync(
        ws.config,
        `<?xml version="1.0" encoding="UTF-8"?>
<config>
  <sources><source name="site" scanPath="${ws.src}" /></sources>
  <servers>
    <server name="local" transporter="symlink_or_copy">
      <location>${ws.dst}</location>
      <url>http://cdn.test/</url>
      <copy>true</copy>
    </server>
  </servers>
  <rules>
    <rule for="site" label="all">
      <processorChain>
        <processor name="link_updater.CSSURLUpdater" />
        <processor name="unique_filename.${unique}" />
      </processorChain>
      <destinations><destination server="local" /></destinations>
    </rule>
  </rules>
  <settings>
    <dataDir>${ws.data}</dataDir>
    <settleDelay>20</settleDelay>
    <keepReplaced>${GRACE_S}</keepReplaced>
  </settings>
</config>
`,
      );
      const cssDir = path.join(ws.dst, "css");
      const imgDir = path.join(ws.dst, "img");
      const css = () => names(cssDir, /^style_.*\.css$/);
      const img = () => names(imgDir, /^bg_.*\.png$/);
      const refOf = (name: string) =>
        /url\(([^)]+)\)/.exec(fs.readFileSync(path.join(cssDir, name), "utf8"))![1]!;
      const webUrl = () => {
        const db = new DatabaseSync(path.join(ws.data, "synced_files.db"), { readOnly: true });
        try {
          return (db.prepare("SELECT url FROM synced_files WHERE input_file = ?").get(
            path.join(ws.src, "css", "style.css"),
          ) as { url: string } | undefined)?.url;
        } finally {
          db.close();
        }
      };

      let d = start(["sync", "--config", ws.config]);
      try {
        await until(() => css().length === 1 && img().length === 1, 20_000, "the first sync");
        const [css1] = css();
        const [img1] = img();
        assertEquals(refOf(css1!), `http://cdn.test/img/${img1}`);
        await until(() => webUrl() === `http://cdn.test/css/${css1}`, 10_000, "the web DB");

        // Change the image (content and a later mtime).
        write(path.join(ws.src, "img", "bg.png"), "second image, different");
        const later = Date.now() / 1000 + 10;
        fs.utimesSync(path.join(ws.src, "img", "bg.png"), later, later);

        // The new stylesheet appears only after the new image it refers to.
        let css2 = "";
        const t0 = Date.now();
        while (!css2) {
          assert(Date.now() - t0 < 20_000, `no new stylesheet: ${css().join(", ")}`);
          const now = css().filter((n) => n !== css1);
          if (now.length > 0) {
            css2 = now[0]!;
            const ref = refOf(css2);
            const img2 = ref.slice("http://cdn.test/img/".length);
            assert(img2 !== img1, `${css2} still refers to the old image`);
            assert(fs.existsSync(path.join(imgDir, img2)), `${css2} published before ${img2}`);
            assertEquals(
              fs.readFileSync(path.join(imgDir, img2), "utf8"),
              "second image, different",
            );
          }
          await new Promise((r) => setTimeout(r, 5));
        }
        const retiredAt = Date.now();
        const img2 = refOf(css2).slice("http://cdn.test/img/".length);
        // The old versions are still there, unchanged: a cached page keeps working.
        assertEquals(refOf(css1!), `http://cdn.test/img/${img1}`);
        assertEquals(fs.readFileSync(path.join(imgDir, img1!), "utf8"), "first image");
        // url and the web DB answer the newest URL.
        const u = await cli([
          "url",
          path.join(ws.src, "css", "style.css"),
          "--server",
          "local",
          "--config",
          ws.config,
        ]);
        assertEquals(u.stdout.trim(), `http://cdn.test/css/${css2}`);
        await until(
          () => webUrl() === `http://cdn.test/css/${css2}`,
          10_000,
          "the web DB's new URL",
        );

        // A crash within the grace period forgets nothing.
        await d.kill();
        const grace = Date.now() - retiredAt < GRACE_S * 1000;
        if (grace) {
          assertEquals(css(), [css1!, css2].sort(), "old stylesheet kept during the grace period");
          assertEquals(img(), [img1!, img2].sort(), "old image kept during the grace period");
        }
        const main = new DatabaseSync(path.join(ws.data, "fileconveyor.db"), { readOnly: true });
        try {
          const retired = main.prepare("SELECT remote_path FROM retired ORDER BY remote_path").all()
            .map((r) => r.remote_path);
          if (grace) assertEquals(retired, [`css/${css1}`, `img/${img1}`]);
        } finally {
          main.close();
        }
        d = start(["sync", "--config", ws.config]);
        await d.waitFor("Initial scan done");
        if (Date.now() - retiredAt < (GRACE_S - 2) * 1000) {
          assertEquals(css(), [css1!, css2].sort(), "old stylesheet kept after the restart");
          assertEquals(img(), [img1!, img2].sort(), "old image kept after the restart");
          const st = JSON.parse((await cli(["status", "--json", "--config", ws.config])).stdout);
          assertEquals(st.replaced.kept, 2);
          const text = (await cli(["status", "--config", ws.config])).stdout;
          assert(/Replaced versions kept: 2 \(next deletion in \d+s\)/.test(text), text);
          // verify expects them there: not orphans.
          const v = await cli(["verify", "--config", ws.config]);
          assert(!/[1-9]\d* orphaned/.test(v.stdout + v.stderr), v.stdout + v.stderr);
        }
        await until(
          () => css().length === 1 && img().length === 1,
          GRACE_S * 1000 + 15_000,
          "the old versions to be deleted after the grace period",
        );
        assert(
          Date.now() - retiredAt >= GRACE_S * 1000 - 100,
          "deleted before the grace period ended",
        );
        assertEquals(css(), [css2]);
        assertEquals(img(), [img2]);
        assertEquals(await d.stop(), 0);
      } finally {
        await d.kill();
      }
    } finally {
      ws.cleanup();
    }
  });
}

Deno.test("keepReplaced 0: sync --once deletes replaced versions at the end of the run; --dry-run writes no web database", async () => {
  const ws = workspace("fc-cache-once-");
  try {
    write(path.join(ws.src, "a.txt"), "one");
    localConfig(ws, {
      settings: { keepReplaced: "0" },
      ruleBody: `<processorChain><processor name="unique_filename.MD5" /></processorChain>`,
    });
    const dry = await cli(["sync", "--once", "--dry-run", "--config", ws.config]);
    assertEquals(dry.code, 0, dry.stderr);
    assert(!fs.existsSync(path.join(ws.data, "synced_files.db")), "a dry run wrote the web DB");
    assertEquals((await cli(["sync", "--once", "--config", ws.config])).code, 0);
    const first = names(ws.dst, /^a_.*\.txt$/);
    assertEquals(first.length, 1);
    write(path.join(ws.src, "a.txt"), "two");
    assertEquals((await cli(["sync", "--once", "--config", ws.config])).code, 0);
    const second = names(ws.dst, /^a_.*\.txt$/);
    assertEquals(second.length, 1);
    assert(second[0] !== first[0], "a new name");
    assertEquals(fs.readFileSync(path.join(ws.dst, second[0]!), "utf8"), "two");
  } finally {
    ws.cleanup();
  }
});

Deno.test("a deleted source file with a unique name stays on the server for the grace period", async () => {
  const ws = workspace("fc-cache-del-");
  try {
    write(path.join(ws.src, "a.txt"), "one");
    write(path.join(ws.src, "plain.txt"), "no unique name");
    localConfig(ws, { settings: { keepReplaced: "3" } });
    // Only a.txt gets a unique name.
    const xml = fs.readFileSync(ws.config, "utf8").replace(
      '<rule for="site" label="all" >',
      `<rule for="site" label="unique"><filter><pattern>.*/a\\.txt</pattern></filter>
        <processorChain><processor name="unique_filename.MD5" /></processorChain>
        <destinations><destination server="local" /></destinations></rule>
      <rule for="site" label="all"><filter><pattern>.*/plain\\.txt</pattern></filter>`,
    );
    fs.writeFileSync(ws.config, xml);
    const d = start(["sync", "--config", ws.config]);
    try {
      await until(
        () =>
          names(ws.dst, /^a_.*\.txt$/).length === 1 &&
          fs.existsSync(path.join(ws.dst, "plain.txt")),
        20_000,
        "the first sync",
      );
      const [unique] = names(ws.dst, /^a_.*\.txt$/);
      fs.rmSync(path.join(ws.src, "a.txt"));
      fs.rmSync(path.join(ws.src, "plain.txt"));
      const t0 = Date.now();
      // The plain name goes at once; the unique one stays until the grace period ends.
      await until(
        () => !fs.existsSync(path.join(ws.dst, "plain.txt")),
        20_000,
        "plain.txt deleted",
      );
      if (Date.now() - t0 < 2500) {
        assert(fs.existsSync(path.join(ws.dst, unique!)), "deleted early");
      }
      const u = await cli(["url", path.join(ws.src, "a.txt"), "--config", ws.config]);
      assertEquals(u.code, 1, "a deleted file has no URL");
      await until(
        () => !fs.existsSync(path.join(ws.dst, unique!)),
        20_000,
        "the unique name deleted",
      );
      assert(Date.now() - t0 >= 2900, "deleted before the grace period ended");
      assertEquals(await d.stop(), 0);
    } finally {
      await d.kill();
    }
  } finally {
    ws.cleanup();
  }
});
