/**
 * Unit tests of the operations pieces: log rotation, progress formatting,
 * the Prometheus text format, listen addresses, log coloring, the terminal
 * region, and health/metrics of an in-process daemon.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals, assertIncludes, assertThrows } from "../_assert.ts";
import { localConfig, workspace, write } from "../_harness.ts";
import { loadConfig } from "../../src/config/load.ts";
import { Daemon } from "../../src/pipeline/daemon.ts";
import { RotatingFile } from "../../src/ops/log_file.ts";
import {
  eta,
  formatDuration,
  formatPair,
  formatProgress,
  type ServerProgress,
} from "../../src/ops/progress.ts";
import { Exposition, Histogram } from "../../src/ops/prometheus.ts";
import { parseListen } from "../../src/ops/http.ts";
import { colorLine } from "../../src/ops/logging.ts";
import { Terminal } from "../../src/ops/terminal.ts";
import { healthOf } from "../../src/ops/health.ts";
import { Metrics } from "../../src/ops/metrics.ts";
import "../../src/transports/mod.ts";

function tmp(): string {
  return fs.realpathSync(Deno.makeTempDirSync({ prefix: "fc-ops-" }));
}

Deno.test("RotatingFile rotates like RotatingFileHandler: file, file.1 … file.N", () => {
  const dir = tmp();
  try {
    const file = path.join(dir, "logs", "fc.log");
    const f = new RotatingFile(file, { maxBytes: 100, backups: 3 });
    for (let i = 0; i < 40; i++) f.write(`line ${String(i).padStart(2, "0")} ${"x".repeat(10)}`);
    f.close();
    const names = fs.readdirSync(path.dirname(file)).sort();
    assertEquals(names, ["fc.log", "fc.log.1", "fc.log.2", "fc.log.3"]);
    for (const n of names) {
      assert(fs.statSync(path.join(dir, "logs", n)).size < 100, `${n} stays under maxBytes`);
    }
    // Newest in file, then .1, .2, .3: the lines run on without a gap.
    const all = ["fc.log.3", "fc.log.2", "fc.log.1", "fc.log"].flatMap((n) =>
      fs.readFileSync(path.join(dir, "logs", n), "utf8").trim().split("\n")
    );
    const nums = all.map((l) => Number(l.slice(5, 7)));
    assertEquals(nums, nums.map((_, i) => nums[0]! + i));
    assertEquals(nums.at(-1), 39);
    assertEquals(fs.statSync(file).mode & 0o777, 0o600);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("RotatingFile with no backups truncates; never rotates an empty file or /dev/null", () => {
  const dir = tmp();
  try {
    const file = path.join(dir, "fc.log");
    const f = new RotatingFile(file, { maxBytes: 50, backups: 0 });
    f.write("a".repeat(80)); // Larger than maxBytes, but the file was empty.
    assertEquals(fs.readFileSync(file, "utf8"), "a".repeat(80) + "\n");
    f.write("second");
    assertEquals(fs.readFileSync(file, "utf8"), "second\n");
    f.close();
    assertEquals(fs.readdirSync(dir), ["fc.log"]);
    const n = new RotatingFile("/dev/null", { maxBytes: 10, backups: 2 });
    for (let i = 0; i < 5; i++) n.write("0123456789");
    n.close();
    assert(!fs.existsSync("/dev/null.1"));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("RotatingFile reopen() follows a file moved away (logrotate)", () => {
  const dir = tmp();
  try {
    const file = path.join(dir, "fc.log");
    const f = new RotatingFile(file, { maxBytes: 0, backups: 0 });
    f.write("before");
    fs.renameSync(file, file + ".old");
    f.reopen();
    f.write("after");
    f.close();
    assertEquals(fs.readFileSync(file + ".old", "utf8"), "before\n");
    assertEquals(fs.readFileSync(file, "utf8"), "after\n");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

function server(over: Partial<ServerProgress> = {}): ServerProgress {
  return {
    name: "cdn",
    doneFiles: 250,
    doneBytes: 5 * 1024 * 1024,
    remainingFiles: 750,
    remainingBytes: 15 * 1024 * 1024,
    running: 4,
    waiting: 0,
    failed: 0,
    fileRate: 50,
    byteRate: 1024 * 1024,
    ...over,
  };
}

Deno.test("formatProgress() shows files, bytes, rate and ETA per server", () => {
  const text = formatProgress({
    elapsedMs: 5_000,
    scanDone: true,
    scans: [{ source: "site", files: 1000, bytes: 20 * 1024 * 1024, done: true }],
    servers: [server(), server({ name: "backup", failed: 3, waiting: 2 })],
  });
  const lines = text.split("\n");
  assertEquals(lines.length, 4);
  assertIncludes(lines[0]!, "initial sync · 5 s · 8 in flight");
  assertIncludes(lines[1]!, "site");
  assertIncludes(lines[1]!, "1,000 files to sync (20.0 MiB)");
  assertIncludes(lines[2]!, "250/1,000 files");
  assertIncludes(lines[2]!, "5.0/20.0 MiB");
  assertIncludes(lines[2]!, "1.0 MiB/s");
  assertIncludes(lines[2]!, " 25%");
  assertIncludes(lines[2]!, "ETA 15 s");
  assertIncludes(lines[3]!, "(2 waiting to retry, 3 failed)");
  for (const l of lines.slice(0, 3)) assert(l.length <= 80, `line fits 80 columns: ${l}`);
});

Deno.test("eta() takes the slower of the file and byte estimates; unknown without a rate", () => {
  assertEquals(eta(server()), 15);
  assertEquals(eta(server({ fileRate: 5 })), 150);
  assertEquals(eta(server({ fileRate: 0 })), undefined);
  assertEquals(eta(server({ remainingFiles: 0 })), 0);
  assertEquals(formatDuration(125_000), "2 m 05 s");
  assertEquals(formatDuration(3_720_000), "1 h 02 m");
  assertEquals(formatPair(512, 2048), "0.5/2.0 KiB");
  assertEquals(formatPair(3, 900), "3/900 B");
});

Deno.test("Exposition and Histogram write the Prometheus text format", () => {
  const e = new Exposition();
  e.family("x_total", "counter", "Things\nwith a newline");
  e.sample("x_total", 3, { path: 'a"b\\c\nd' });
  const h = new Histogram([1, 0.1, 10]);
  h.observe(0.05, { server: "cdn" });
  h.observe(5, { server: "cdn" });
  h.observe(50, { server: "cdn" });
  h.touch({ server: "other" });
  h.write(e, "lag_seconds", "Lag");
  const text = e.text();
  assertIncludes(text, "# HELP x_total Things\\nwith a newline\n# TYPE x_total counter\n");
  assertIncludes(text, 'x_total{path="a\\"b\\\\c\\nd"} 3\n');
  assertIncludes(text, "# TYPE lag_seconds histogram\n");
  assertIncludes(text, 'lag_seconds_bucket{server="cdn",le="0.1"} 1\n');
  assertIncludes(text, 'lag_seconds_bucket{server="cdn",le="1"} 1\n');
  assertIncludes(text, 'lag_seconds_bucket{server="cdn",le="10"} 2\n');
  assertIncludes(text, 'lag_seconds_bucket{server="cdn",le="+Inf"} 3\n');
  assertIncludes(text, 'lag_seconds_sum{server="cdn"} 55.05\n');
  assertIncludes(text, 'lag_seconds_count{server="cdn"} 3\n');
  assertIncludes(text, 'lag_seconds_count{server="other"} 0\n');
});

Deno.test("parseListen() accepts HOST:PORT, :PORT, PORT and [v6]:PORT, loopback by default", () => {
  assertEquals(parseListen("0.0.0.0:9100"), { hostname: "0.0.0.0", port: 9100 });
  assertEquals(parseListen(":9100"), { hostname: "127.0.0.1", port: 9100 });
  assertEquals(parseListen("9100"), { hostname: "127.0.0.1", port: 9100 });
  assertEquals(parseListen("[::1]:0"), { hostname: "::1", port: 0 });
  assertEquals(parseListen("localhost:8080"), { hostname: "localhost", port: 8080 });
  assertThrows(() => parseListen("localhost"));
  assertThrows(() => parseListen("host:99999"));
});

Deno.test("colorLine() colors only the level of text lines", () => {
  const time = "2026-01-01T00:00:00.000Z";
  const rec = (level: "error" | "info") => ({ time, level, component: "x", message: "m" });
  assertEquals(
    colorLine(`${time} ERROR [x] m`, rec("error")),
    `${time} \x1b[31mERROR\x1b[0m [x] m`,
  );
  assertEquals(colorLine(`${time} INFO  [x] m`, rec("info")), `${time} INFO  [x] m`);
  const json = JSON.stringify(rec("error"));
  assertEquals(colorLine(json, rec("error")), json);
});

Deno.test("Terminal keeps log lines above the frame and clears it at the end", () => {
  let out = "";
  const t = new Terminal({ write: (s) => (out += s), size: () => ({ columns: 0, rows: 0 }) });
  t.print("before");
  t.frame("frame 1\nsecond line");
  t.frame("frame 2\nsecond line");
  t.print("a log line");
  t.done("summary");
  assert(out.startsWith("before\n"), out);
  assertIncludes(out, "frame 1\nsecond line");
  assertIncludes(out, "frame 2");
  assertIncludes(out, "\x1b[2K"); // erase line
  assert(out.indexOf("a log line") > out.indexOf("frame 2"));
  assert(out.endsWith("summary\n"), JSON.stringify(out.slice(-40)));
  assert(!t.active);
});

Deno.test("healthOf() and Metrics report a failing server and the watch state", async () => {
  const ws = workspace("fc-ops-health-");
  try {
    write(path.join(ws.src, "a.txt"), "hello");
    const config = loadConfig(localConfig(ws, { settings: { healthFailAfter: "1" } }));
    const daemon = await Daemon.open(config, { once: true });
    try {
      // Not watching (--once): no watcher is expected.
      assertEquals(healthOf(daemon, false).ok, true);
      assertEquals(healthOf(daemon, true).problems, ['Source "site" has no watcher']);
      const now = Date.now();
      daemon.store.serverFailed("local", "Connection refused", null, now - 500);
      assertEquals(healthOf(daemon, false, now).ok, true, "failing for less than healthFailAfter");
      const h = healthOf(daemon, false, now + 1500);
      assertEquals(h.ok, false);
      assertIncludes(h.problems[0]!, 'Server "local" has been failing for 2 s: Connection refused');
      const metrics = new Metrics(daemon);
      const text = metrics.render();
      assertIncludes(text, 'fileconveyor_server_failing{server="local"} 1\n');
      assertIncludes(text, 'fileconveyor_watcher_up{source="site"} 0\n');
      assertIncludes(text, 'fileconveyor_sync_lag_seconds_count{server="local"} 0\n');
      await daemon.run();
      metrics.close();
    } finally {
      daemon.stop();
    }
    assert(fs.existsSync(path.join(ws.dst, "a.txt")));
  } finally {
    ws.cleanup();
  }
});
