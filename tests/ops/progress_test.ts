/**
 * Live progress and terminal colors, end to end: `sync --once` under a
 * pseudo-terminal (`script` from util-linux) shows progress frames and a
 * summary; the same run with standard error piped shows none of it.
 */
import * as path from "node:path";
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { cli, localConfig, workspace, write } from "../_harness.ts";
import { pty } from "./_helpers.ts";

function populate(src: string, n: number) {
  for (let i = 0; i < n; i++) {
    write(path.join(src, `d${i % 7}`, `f${i}.txt`), `file ${i} ${"x".repeat((i * 997) % 20000)}`);
  }
}

// deno-lint-ignore no-control-regex
const ESC = /\x1b\[/;
// deno-lint-ignore no-control-regex
const COLOR = /\x1b\[3\dm/;

Deno.test("sync on a terminal shows live progress per server, then a summary", async () => {
  const ws = workspace("fc-ops-progress-");
  try {
    populate(ws.src, 300);
    localConfig(ws);
    const r = await pty(["sync", "--once", "--config", ws.config], { NO_COLOR: "1" });
    assertEquals(r.code, 0, r.output.slice(-2000));
    assertIncludes(r.output, "fileconveyor: initial");
    assert(
      /local +\[[█░]+\] +\d+% {2}\d+\/\d+ files {2}[\d.]+\/[\d.]+ \w+ {2}.*\/s {2}ETA /.test(
        r.output,
      ),
      r.output.slice(-3000),
    );
    assertIncludes(r.output, "\x1b[2K", "frames are redrawn in place");
    assert(
      /Initial sync done after \d+ s: local 300 files \([\d.]+ (KiB|MiB)\)/.test(r.output),
      r.output.slice(-1500),
    );
    assertIncludes(r.output, "[symlink_or_copy:local] uploaded", "log lines still appear");
    // NO_COLOR: escape codes only for redrawing, never a color.
    assert(!COLOR.test(r.output), "no color with NO_COLOR");
  } finally {
    ws.cleanup();
  }
});

Deno.test("sync with standard error piped prints no progress and no escape codes", async () => {
  const ws = workspace("fc-ops-noprogress-");
  try {
    populate(ws.src, 100);
    localConfig(ws);
    const r = await cli(["sync", "--once", "--config", ws.config]);
    assertEquals(r.code, 0, r.stderr);
    assertIncludes(r.stderr, "[symlink_or_copy:local] uploaded");
    assert(!r.stderr.includes("fileconveyor: initial"), "no progress frame");
    assert(!r.stderr.includes("ETA"), "no ETA");
    assert(!r.stderr.includes("Initial sync done after"), "no progress summary");
    assert(!ESC.test(r.stderr + r.stdout), "no escape codes");
  } finally {
    ws.cleanup();
  }
});

Deno.test("on a terminal, errors are colored unless NO_COLOR is set; --no-progress hides progress", async () => {
  const ws = workspace("fc-ops-color-");
  try {
    write(path.join(ws.src, "ok.txt"), "fine");
    write(path.join(ws.src, "bad.css"), "a{}");
    // A directory where the file must go: the upload fails (EISDIR).
    write(path.join(ws.dst, "bad.css", "keep"), "x");
    localConfig(ws);
    const colored = await pty(["sync", "--once", "--config", ws.config]);
    assertEquals(colored.code, 1, colored.output.slice(-2000));
    assertIncludes(colored.output, "\x1b[31mERROR\x1b[0m [symlink_or_copy:local]");
    assertIncludes(colored.output, "1 failed");

    // A fresh data directory: the first run left the file as failed.
    const plain = await pty([
      "sync",
      "--once",
      "--no-progress",
      "--data-dir",
      path.join(ws.root, "data2"),
      "--config",
      ws.config,
    ], { NO_COLOR: "1" });
    assertEquals(plain.code, 1, plain.output.slice(-2000));
    assertIncludes(plain.output, "ERROR [symlink_or_copy:local]");
    assert(!plain.output.includes("\x1b[31m"), "NO_COLOR respected");
    assert(!plain.output.includes("fileconveyor: initial"), "--no-progress respected");
  } finally {
    ws.cleanup();
  }
});
