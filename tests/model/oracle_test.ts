/**
 * The model-based test's own parts: the model's destination semantics, the
 * oracle, byte-exact names, and the generator's determinism. A model that
 * is wrong would make the engine test pass or fail for the wrong reason.
 *
 * @module
 */
import { assert, assertEquals } from "../_assert.ts";
import { DRIVER_CLASSES, generate, seedOf } from "./_gen.ts";
import { applyToModel, fromBytes, Model, type Op, OP_CLASSES, OUTSIDE, toBytes } from "./_model.ts";
import { diffDst, uncovered } from "./_oracle.ts";

function model(ops: Op[]): Model {
  const m = new Model();
  for (const op of ops) assert(applyToModel(m, op), `op does not apply: ${JSON.stringify(op)}`);
  return m;
}

const w = (path: string, data: string): Op => ({ op: "write", cls: "create", path, data });

Deno.test("Model.expected() publishes files and in-tree symlinks to files, nothing else", () => {
  const m = model([
    { op: "mkdirp", cls: "mkdirp", base: "d", files: [{ rel: "f.txt", data: "F" }] },
    w("a.txt", "A"),
    { op: "symlink", cls: "symlink", path: "to-file", target: "d/f.txt" },
    { op: "symlink", cls: "symlink", path: "d/up", target: "../a.txt" },
    { op: "symlink", cls: "symlink", path: "to-dir", target: "d" },
    { op: "symlink", cls: "symlink", path: "via-dir", target: "to-dir/f.txt" },
    { op: "symlink", cls: "symlink", path: "dangling", target: "missing" },
    { op: "symlink", cls: "symlink", path: "outside", target: `${OUTSIDE}/outside.txt` },
    { op: "symlink", cls: "symlink", path: "escape", target: "../../etc/passwd" },
    { op: "symlink", cls: "symlink", path: "loop", target: "loop" },
    { op: "fifo", cls: "special", path: "p" },
    { op: "socket", cls: "special", path: "s" },
    { op: "symlink", cls: "symlink", path: "to-fifo", target: "p" },
    { op: "hardlink", cls: "hardlink", from: "a.txt", to: "d/hard" },
  ]);
  assertEquals(
    [...m.expected()].sort(),
    [
      ["a.txt", "A"],
      ["d/f.txt", "F"],
      ["d/hard", "A"],
      ["d/up", "A"],
      ["to-file", "F"],
      ["via-dir", "F"],
    ],
  );
});

Deno.test("Model: writes through a hard link change every name; rename between links does nothing", () => {
  const m = model([
    w("a", "1"),
    { op: "hardlink", cls: "hardlink", from: "a", to: "b" },
    w("b", "2"),
    { op: "rename", cls: "rename", from: "a", to: "b" },
  ]);
  assertEquals(m.content("a"), "2");
  assertEquals(m.content("b"), "2");
});

Deno.test("Model: ops that do not apply are refused and change nothing", () => {
  const m = model([w("f", "x")]);
  const before = JSON.stringify([...m.entries]);
  for (
    const op of [
      w("f/inner", "y"),
      { op: "rmr", cls: "rmr", path: "f" },
      { op: "racy", cls: "racy", path: "f", data: "longer" },
      { op: "rename", cls: "rename", from: "nope", to: "g" },
    ] as Op[]
  ) assert(!applyToModel(m, op), JSON.stringify(op));
  assertEquals(JSON.stringify([...m.entries]), before);
});

Deno.test("oracle: differences need a failure with a reason; special entries never pass", () => {
  const m = model([
    { op: "mkdirp", cls: "mkdirp", base: "d", files: [{ rel: "x", data: "X" }] },
    w("a", "A"),
    { op: "symlink", cls: "symlink", path: "l", target: "d/x" },
  ]);
  const dst = new Map([
    ["a", { type: "f", content: "stale" }],
    ["extra", { type: "f", content: "?" }],
    ["pipe", { type: "p" }],
    ["d", { type: "d" }],
  ]);
  const diffs = diffDst(m.expected(), dst);
  assertEquals(diffs.map((d) => `${d.what} ${d.path}`), [
    "differs a",
    "missing d/x",
    "extra extra",
    "missing l",
    "special pipe",
  ]);
  const src = "/s";
  const fail = (file: string, error: string | null = "EACCES") => ({
    file: `${src}/${file}`,
    error,
  });
  assertEquals(uncovered(diffs, [], m, src).length, 5);
  // A directory above covers its files, a symlink's target covers the link; no reason, no cover.
  const left = uncovered(diffs, [fail("a"), fail("d"), fail("extra", null), fail("pipe")], m, src);
  assertEquals(left.map((d) => d.path), ["extra", "pipe"]);
  // Removed from the destination by hand and unchanged since: only verify can know.
  applyToModel(m, { op: "rmdst", cls: "dst-removed", path: "d" });
  assertEquals(uncovered(diffs, [fail("a")], m, src).map((d) => d.path), ["extra", "l", "pipe"]);
});

Deno.test("model paths carry bytes that are not UTF-8 unchanged", () => {
  const bytes = new Uint8Array([0x64, 0xe9, 0x2f, 0xff, 0xfe, 0x2e, 0x74, 0xc3, 0xa9]);
  const p = fromBytes(bytes);
  assertEquals(p, "d\uDCE9/\uDCFF\uDCFE.t\u00e9");
  assertEquals(toBytes(p), bytes);
});

Deno.test("generate() is deterministic and can produce every class of each driver", () => {
  const all = new Set(OP_CLASSES);
  for (const driver of ["once", "watch", "cli"] as const) {
    const a = generate(seedOf(1, 2), { driver, classes: all, length: 20 });
    assertEquals(generate(seedOf(1, 2), { driver, classes: all, length: 20 }), a);
    const seen = new Set<string>();
    for (let i = 0; i < 60; i++) {
      for (const op of generate(seedOf(3, i), { driver, classes: all, length: 20 })) {
        seen.add(op.cls);
      }
    }
    const missing = DRIVER_CLASSES[driver].filter((c) => !seen.has(c));
    assertEquals(missing, [], `${driver} never generated`);
  }
});
