import * as fs from "node:fs";
import * as path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { assert, assertEquals } from "../_assert.ts";
import { cli, eventually, localConfig, spawn, workspace, write } from "../_harness.ts";

/** The keys synced_files.db answers for, sorted. */
function keys(file: string): string[] {
  const db = new DatabaseSync(file, { readOnly: true });
  try {
    const rows = db.prepare("SELECT input_file FROM synced_files ORDER BY input_file").all();
    return rows.map((r) => String(r.input_file));
  } finally {
    db.close();
  }
}

Deno.test("sync --once after a clean stop keeps the web database it published, until the keys or files change", async () => {
  const ws = workspace("fc-web-resume-");
  try {
    write(path.join(ws.src, "a.txt"), "one");
    localConfig(ws);
    const web = path.join(ws.data, "synced_files.db");
    const once = async () => {
      const r = await cli(["sync", "--once", "--config", ws.config]);
      assertEquals(r.code, 0, r.stderr);
    };
    await once();
    const first = fs.statSync(web).ino;
    assertEquals(keys(web), [path.join(ws.src, "a.txt")]);

    // Nothing changed: the published file stays (not rebuilt, not replaced).
    await once();
    assertEquals(fs.statSync(web).ino, first);
    assertEquals(keys(web), [path.join(ws.src, "a.txt")]);

    // A synced file changed: published anew.
    write(path.join(ws.src, "b.txt"), "two");
    await once();
    const second = fs.statSync(web).ino;
    assert(second !== first, "not republished after a change");
    assertEquals(keys(web), [path.join(ws.src, "a.txt"), path.join(ws.src, "b.txt")]);

    // The keys changed (the source is now configured through a symlink, whose paths are keys
    // too): published anew with them.
    const link = path.join(ws.root, "site");
    fs.symlinkSync(ws.src, link);
    const xml = fs.readFileSync(ws.config, "utf8");
    fs.writeFileSync(ws.config, xml.replace(`scanPath="${ws.src}"`, `scanPath="${link}"`));
    await once();
    assert(fs.statSync(web).ino !== second, "not republished after the keys changed");
    assert(keys(web).includes(path.join(link, "a.txt")), `keys: ${keys(web).join(", ")}`);

    // A published file removed meanwhile is published again at the start.
    fs.rmSync(web);
    await once();
    assert(fs.existsSync(web), "not published again");
  } finally {
    ws.cleanup();
  }
});

Deno.test("sync (watching) after a clean stop keeps the web database it published until a file changes", async () => {
  const ws = workspace("fc-web-resume-watch-");
  try {
    write(path.join(ws.src, "a.txt"), "one");
    localConfig(ws);
    const web = path.join(ws.data, "synced_files.db");
    const first = await cli(["sync", "--once", "--config", ws.config]);
    assertEquals(first.code, 0, first.stderr);
    const published = fs.statSync(web).ino;

    const d = spawn(["sync", "--config", ws.config]);
    try {
      await d.waitFor("Initial scan done", 60_000);
      // Watching, with nothing changed: the published file was neither rebuilt nor replaced.
      await new Promise((r) => setTimeout(r, 1500));
      assertEquals(fs.statSync(web).ino, published);
      // A new file is synced: published anew while watching.
      write(path.join(ws.src, "b.txt"), "two");
      const both = [path.join(ws.src, "a.txt"), path.join(ws.src, "b.txt")];
      await eventually(
        () => {
          if (!fs.existsSync(web) || fs.statSync(web).ino === published) return "not republished";
          const now = keys(web);
          return now.join() === both.join() ? "" : `keys: ${now.join(", ")}`;
        },
        30_000,
        "the web database to list b.txt",
      );
    } finally {
      assertEquals(await d.stop(), 0, d.log());
    }
    assertEquals(keys(web), [path.join(ws.src, "a.txt"), path.join(ws.src, "b.txt")]);
  } finally {
    ws.cleanup();
  }
});
