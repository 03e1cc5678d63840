import * as fs from "node:fs";
import { type FileRow, Store } from "../../src/store/store.ts";
import { assertEquals } from "../_assert.ts";

function row(p: string, isDir = false): FileRow {
  const dir = p.slice(0, p.lastIndexOf("/"));
  return {
    path: p,
    dir,
    source: "s",
    is_dir: isDir ? 1 : 0,
    size: p.length,
    mtime_ms: 1_000,
    ctime_ms: 2_000,
    ino: p.length * 7,
    recorded_ms: 3_000,
  };
}

Deno.test("childrenByName() answers the same with and without leaf: the entries of the directory only", () => {
  const data = Deno.makeTempDirSync();
  const store = new Store(data);
  try {
    // Neighbours that sort around "/t/a/" in bytes ("-" and "." before "/", "0" after it),
    // names that are not ASCII, and rows stored below a subdirectory gone from disk.
    const paths = [
      "/t/a",
      "/t/a/f1",
      "/t/a/f2.txt",
      "/t/a/é ü",
      "/t/a/sub",
      "/t/a/sub/deep",
      "/t/a/sub/x/y",
      "/t/a-b/f",
      "/t/a.c",
      "/t/a0",
      "/t/a0/f",
      "/t/ab/f",
      "/t/f",
    ];
    for (const p of paths) store.putFile(row(p, p === "/t/a" || p === "/t/a/sub"));
    const plain = store.childrenByName("/t/a");
    const leaf = store.childrenByName("/t/a", { leaf: true });
    assertEquals([...plain.keys()].sort(), ["f1", "f2.txt", "sub", "é ü"]);
    assertEquals([...leaf.entries()].sort(), [...plain.entries()].sort());
    assertEquals(leaf.get("f1"), row("/t/a/f1"));
    assertEquals(store.childrenByName("/t/a0", { leaf: true }).size, 1);
    assertEquals(store.childrenByName("/t/none", { leaf: true }).size, 0);
  } finally {
    store.close();
    fs.rmSync(data, { recursive: true });
  }
});
