/**
 * The scanner's directory reader: the C library's listing and `statx` give
 * exactly what Deno's `readDirSync` and `lstatSync` give (names, types,
 * size, mtime, ctime, inode) and fail the same way, so a store written by
 * one is read unchanged by the other.
 *
 * @module
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { nativeListing, openDir } from "../../src/watch/_dir_reader.ts";
import { assert, assertEquals } from "../_assert.ts";

function tree(): string {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "fc-dirreader-")));
  fs.mkdirSync(path.join(root, "sub"));
  fs.writeFileSync(path.join(root, "a.txt"), "hello");
  fs.writeFileSync(path.join(root, "empty"), "");
  fs.writeFileSync(path.join(root, "big.bin"), new Uint8Array(70_000));
  fs.writeFileSync(path.join(root, "naïve ünïcødé ✓.css"), "x");
  // Sub-millisecond and odd fractions: the milliseconds must be cut as Deno cuts them.
  fs.utimesSync(path.join(root, "a.txt"), 1_600_000_000.9999, 1_600_000_000.9999);
  fs.utimesSync(path.join(root, "empty"), 1_234_567_890.0005, 1_234_567_890.1234567);
  fs.symlinkSync("a.txt", path.join(root, "link"));
  fs.symlinkSync("sub", path.join(root, "dirlink"));
  fs.symlinkSync("missing", path.join(root, "dangling"));
  const fifo = new Deno.Command("mkfifo", { args: [path.join(root, "fifo")] }).outputSync();
  assert(fifo.success, "mkfifo failed");
  // A name that is not UTF-8 (Deno shows it with U+FFFD).
  const touch = new Deno.Command("sh", {
    args: ["-c", `touch "$(printf '${root}/bad-\\377.txt')"`],
  }).outputSync();
  assert(touch.success, "cannot create a non-UTF-8 name");
  return root;
}

interface Seen {
  name: string;
  isFile: boolean;
  isDirectory: boolean;
  isSymlink: boolean;
  stat?: { size: number; mtimeMs: number; ctimeMs: number; ino: number; file: boolean } | string;
}

function read(dir: string, native: boolean): Seen[] {
  const d = openDir(dir, { native });
  try {
    return d.entries.map((e) => {
      let stat: Seen["stat"];
      try {
        const s = d.lstat(e.name);
        stat = s && {
          size: s.size,
          mtimeMs: s.mtimeMs,
          ctimeMs: s.ctimeMs,
          ino: s.ino,
          file: s.isFile(),
        };
      } catch (err) {
        stat = (err as Error).name;
      }
      return {
        name: e.name,
        isFile: e.isFile,
        isDirectory: e.isDirectory,
        isSymlink: e.isSymlink,
        ...(stat !== undefined ? { stat } : {}),
      };
    }).sort((a, b) => a.name < b.name ? -1 : 1);
  } finally {
    d.close();
  }
}

Deno.test("openDir() uses the C library on Linux when FFI is allowed", () => {
  const allowed = Deno.permissions.querySync({ name: "ffi" }).state === "granted";
  if (allowed && Deno.build.os === "linux" && ["x86_64", "aarch64"].includes(Deno.build.arch)) {
    assert(nativeListing(), "the native listing was not loaded");
  }
});

Deno.test("openDir() lists and stats exactly as Deno's own calls do", () => {
  const root = tree();
  try {
    const mine = read(root, true);
    const deno = read(root, false);
    assertEquals(mine, deno);
    assertEquals(mine.length, 10);
    const names = mine.map((e) => e.name);
    assert(names.some((n) => n.includes("\uFFFD")), "the non-UTF-8 name is not listed lossily");
    const a = mine.find((e) => e.name === "a.txt")!;
    assertEquals(typeof a.stat === "object" && a.stat.mtimeMs, 1_600_000_000_999);
    // An entry gone between the listing and the stat: undefined, with both.
    fs.rmSync(path.join(root, "a.txt"));
    for (const native of [true, false]) {
      const d = openDir(root, { native });
      try {
        assertEquals(d.lstat("a.txt"), undefined);
      } finally {
        d.close();
      }
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

Deno.test("openDir() fails as Deno.readDirSync does", () => {
  const root = tree();
  try {
    const cases = [path.join(root, "nothing"), path.join(root, "a.txt"), path.join(root, "fifo")];
    if (Deno.uid() !== 0) {
      fs.mkdirSync(path.join(root, "locked"));
      fs.chmodSync(path.join(root, "locked"), 0);
      cases.push(path.join(root, "locked"));
    }
    for (const dir of cases) {
      const errors = [true, false].map((native) => {
        try {
          openDir(dir, { native }).close();
          return "listed";
        } catch (e) {
          return `${(e as Error).name}: ${(e as Error).message}`;
        }
      });
      assertEquals(errors[0], errors[1]);
      assert(errors[0] !== "listed", `${dir} was listed`);
    }
  } finally {
    fs.chmodSync(path.join(root), 0o700);
    fs.rmSync(root, { recursive: true, force: true });
  }
});
