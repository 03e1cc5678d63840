/**
 * The log file option end to end: rotation like RotatingFileHandler, JSON
 * lines, one line per event with component and subject.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { cli, localConfig, workspace, write } from "../_harness.ts";

Deno.test("logFile writes the log to a rotated file (file, file.1 … file.N)", async () => {
  const ws = workspace("fc-ops-logfile-");
  try {
    for (let i = 0; i < 80; i++) write(path.join(ws.src, `css/f${i}.css`), `a{b:${i}}`);
    const log = path.join(ws.root, "logs", "fileconveyor.log");
    localConfig(ws, { settings: { logFile: log, logMaxBytes: "2048", logBackups: "2" } });
    const r = await cli(["sync", "--once", "--config", ws.config]);
    assertEquals(r.code, 0, r.stderr);
    const names = fs.readdirSync(path.dirname(log)).sort();
    assertEquals(names, ["fileconveyor.log", "fileconveyor.log.1", "fileconveyor.log.2"]);
    for (const n of names) assert(fs.statSync(path.join(path.dirname(log), n)).size < 2048);
    const text = fs.readFileSync(log, "utf8");
    // The last lines of the run are in the current file, one event per line.
    assertIncludes(text, "INFO  [daemon] Done: 80 synced");
    for (const line of text.trim().split("\n")) {
      assert(/^\S+Z (DEBUG|INFO |WARN |ERROR) \[[\w:.-]+\] \S/.test(line), line);
    }
    const older = fs.readFileSync(log + ".1", "utf8");
    assert(
      /\[symlink_or_copy:local\] uploaded css\/f\d+\.css \(\d+ B, \d+ ms\)/.test(older),
      older,
    );
    // Standard error got the same lines.
    assertIncludes(r.stderr, "[daemon] Done: 80 synced");
  } finally {
    ws.cleanup();
  }
});

Deno.test("--log-format json writes JSON lines with component and message, to stderr and the file", async () => {
  const ws = workspace("fc-ops-logjson-");
  try {
    write(path.join(ws.src, "a.txt"), "hello");
    const log = path.join(ws.root, "fc.log");
    localConfig(ws, { settings: { logFile: log } });
    const r = await cli(["sync", "--once", "--log-format", "json", "--config", ws.config]);
    assertEquals(r.code, 0, r.stderr);
    for (const text of [fs.readFileSync(log, "utf8"), r.stderr]) {
      const records = text.trim().split("\n").map((l) => JSON.parse(l));
      assert(records.length >= 3);
      for (const rec of records) {
        assert(typeof rec.time === "string" && typeof rec.component === "string", rec);
        assert(["debug", "info", "warn", "error"].includes(rec.level), rec);
      }
      const up = records.find((x) => x.component === "symlink_or_copy:local");
      assert(up && /^uploaded a\.txt \(5 B, \d+ ms\)$/.test(up.message), JSON.stringify(up));
    }
  } finally {
    ws.cleanup();
  }
});
