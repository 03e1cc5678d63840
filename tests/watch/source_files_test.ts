import * as fs from "node:fs";
import * as path from "node:path";
import { IgnoreMatcher } from "../../src/filter/ignore.ts";
import { tempName } from "../../src/util/temp_name.ts";
import {
  type LinkSkip,
  relPath,
  statSourceFile,
  walkSourceFiles,
} from "../../src/watch/source_files.ts";
import { assert, assertEquals } from "../_assert.ts";
import { workspace, write } from "../_harness.ts";
import { NO_DAC } from "../reliability/_util.ts";

Deno.test("statSourceFile() follows symlinks only inside the root and reports why it skips one", () => {
  const ws = workspace("fc-srcfiles-");
  try {
    const root = ws.src;
    write(path.join(root, "a.txt"), "abc");
    write(path.join(ws.root, "outside.txt"), "secret");
    fs.mkdirSync(path.join(root, "dir"));
    fs.symlinkSync(path.join(root, "a.txt"), path.join(root, "in.txt"));
    fs.symlinkSync(path.join(ws.root, "outside.txt"), path.join(root, "out.txt"));
    fs.symlinkSync(path.join(root, "nowhere"), path.join(root, "dangling.txt"));
    fs.symlinkSync(path.join(root, "dir"), path.join(root, "linkdir"));
    const skips: LinkSkip[] = [];
    const st = (name: string) => statSourceFile(root, path.join(root, name), (s) => skips.push(s));
    const a = st("a.txt");
    assertEquals(a?.size, 3);
    assertEquals(a?.ino, fs.statSync(path.join(root, "a.txt")).ino);
    assertEquals(st("in.txt")?.ino, a?.ino);
    assertEquals(st("out.txt"), undefined);
    assertEquals(st("dangling.txt"), undefined);
    assertEquals(st("linkdir"), undefined, "a linked directory is not a file");
    assertEquals(st("dir"), undefined);
    assertEquals(st("missing"), undefined);
    assertEquals(skips, [
      { why: "outside", target: path.join(ws.root, "outside.txt") },
      { why: "dangling" },
    ]);
  } finally {
    ws.cleanup();
  }
});

Deno.test("walkSourceFiles() yields source files with relative paths and skips what the matcher ignores", () => {
  const ws = workspace("fc-srcfiles-");
  try {
    const root = ws.src;
    for (
      const rel of ["a.txt", "css/b.css", "deep/er/c.js", ".git/config", "x/.git/y", "data/db"]
    ) {
      write(path.join(root, rel), rel);
    }
    write(path.join(root, "css", tempName("b.css")), "partial");
    fs.mkdirSync(path.join(root, "empty"));
    fs.symlinkSync(path.join(root, "css/b.css"), path.join(root, "link.css"));
    fs.symlinkSync(path.join(root, "css"), path.join(root, "linked-dir"));
    const fifo = new Deno.Command("mkfifo", { args: [path.join(root, "pipe")] }).outputSync();
    assert(fifo.success, "mkfifo");
    const ignore = new IgnoreMatcher({ dirs: [".git"], exclude: [path.join(root, "data")] });
    const found = [...walkSourceFiles(root, { ignore })];
    assertEquals(found.map((f) => f.rel).sort(), [
      "a.txt",
      "css/b.css",
      "deep/er/c.js",
      "link.css",
    ]);
    for (const f of found) {
      assertEquals(f.path, path.join(root, f.rel));
      assertEquals(f.st.size, fs.statSync(f.path).size);
    }
  } finally {
    ws.cleanup();
  }
});

Deno.test("walkSourceFiles() reports an unreadable directory and goes on", () => {
  const ws = workspace("fc-srcfiles-");
  try {
    const root = ws.src;
    write(path.join(root, "ok/a.txt"), "a");
    write(path.join(root, "locked/b.txt"), "b");
    fs.chmodSync(path.join(root, "locked"), 0o000);
    // Root reads anything: walk without its permission override then.
    const asRoot = Deno.uid() === 0;
    const unreadable: string[] = [];
    const rels = asRoot ? walkWithoutDac(root) : [
      ...walkSourceFiles(root, {
        ignore: new IgnoreMatcher(),
        onUnreadable: (dir) => unreadable.push(dir),
      }),
    ].map((f) => f.rel);
    fs.chmodSync(path.join(root, "locked"), 0o755);
    if (asRoot) {
      assertEquals(rels, ["ok/a.txt", `unreadable:${path.join(root, "locked")}`]);
    } else {
      assertEquals(rels, ["ok/a.txt"]);
      assertEquals(unreadable, [path.join(root, "locked")]);
    }
  } finally {
    ws.cleanup();
  }
});

/** Runs the walk in a child process without root's permission override; returns what it saw. */
function walkWithoutDac(root: string): string[] {
  const mod = new URL("../../src/watch/source_files.ts", import.meta.url).href;
  const ign = new URL("../../src/filter/ignore.ts", import.meta.url).href;
  const code = `
    import { walkSourceFiles } from "${mod}";
    import { IgnoreMatcher } from "${ign}";
    const out = [];
    for (const f of walkSourceFiles(${JSON.stringify(root)}, {
      ignore: new IgnoreMatcher(),
      onUnreadable: (d) => out.push("unreadable:" + d),
    })) out.push(f.rel);
    console.log(JSON.stringify(out.sort()));
  `;
  const cmd = [...NO_DAC, Deno.execPath(), "eval", code];
  const r = new Deno.Command(cmd[0]!, { args: cmd.slice(1) }).outputSync();
  assert(r.success, `walk failed: ${new TextDecoder().decode(r.stderr)}`);
  return JSON.parse(new TextDecoder().decode(r.stdout));
}

Deno.test("relPath() is /-separated and relative to the root", () => {
  assertEquals(relPath("/site", "/site/css/a.css"), "css/a.css");
  assertEquals(relPath("/site", "/site/a"), "a");
});
