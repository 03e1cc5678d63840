/**
 * The HTTP listener of a running daemon, end to end: `/metrics` in the
 * Prometheus text format, `/healthz` following the watcher, the JSON API,
 * request protection, per-component debug logging, and a port that is taken.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { cli, eventually, localConfig, spawn, workspace, write } from "../_harness.ts";
import { get, getWithHost, httpBase, until } from "./_helpers.ts";

/** Checks the exposition format: HELP and TYPE before each family's samples, valid sample lines. */
function checkExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  let family = "";
  const typed = new Set<string>();
  for (const line of text.trimEnd().split("\n")) {
    const help = /^# HELP ([a-zA-Z_:][\w:]*) .+$/.exec(line);
    if (help) {
      family = help[1]!;
      continue;
    }
    const type = /^# TYPE ([a-zA-Z_:][\w:]*) (counter|gauge|histogram)$/.exec(line);
    if (type) {
      assertEquals(type[1], family, `TYPE follows HELP: ${line}`);
      assert(!typed.has(family), `family ${family} appears once`);
      typed.add(family);
      continue;
    }
    const m = /^([a-zA-Z_:][\w:]*)(\{(?:[a-zA-Z_]\w*="(?:[^"\\]|\\.)*",?)*\})? (\S+)$/.exec(line);
    assert(m, `valid sample line: ${line}`);
    assert(m[1] === family || m[1]!.startsWith(family + "_"), `${m[1]} belongs to ${family}`);
    assert(!Number.isNaN(Number(m[3]!.replace("+Inf", "Infinity"))), line);
    samples.set(m[1]! + (m[2] ?? ""), Number(m[3]));
  }
  return samples;
}

Deno.test("a running daemon serves /metrics, /healthz and /api/status; /healthz follows the watcher", async () => {
  const ws = workspace("fc-ops-http-");
  const run = spawn(
    [
      "sync",
      "--config",
      localConfig(ws, { settings: { rescanInterval: "0" } }),
      "--http",
      "127.0.0.1:0",
    ],
    { FILECONVEYOR_DEBUG: "http" },
  );
  try {
    for (let i = 0; i < 20; i++) write(path.join(ws.src, `f${i}.txt`), `file ${i}`);
    const base = await httpBase(run);
    await eventually(() => fs.readdirSync(ws.dst).length === 20 ? "" : "syncing", 20_000);
    write(path.join(ws.src, "later.txt"), "written while watching");
    await eventually(
      () => fs.existsSync(path.join(ws.dst, "later.txt")) ? "" : "later.txt",
      10_000,
    );

    // /metrics
    let m = await get(base, "/metrics");
    const deadline = Date.now() + 5000;
    while (
      !m.text.includes('fileconveyor_synced_files{server="local"} 21') && Date.now() < deadline
    ) {
      m = await get(base, "/metrics");
    }
    assertEquals(m.status, 200);
    assertEquals(m.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    const s = checkExposition(m.text);
    assertEquals(s.get('fileconveyor_synced_files{server="local"}'), 21);
    assertEquals(s.get('fileconveyor_sync_lag_seconds_count{server="local"}'), 21);
    assertEquals(s.get('fileconveyor_sync_lag_seconds_bucket{server="local",le="+Inf"}'), 21);
    assert(s.get('fileconveyor_sync_lag_seconds_sum{server="local"}')! > 0);
    assertEquals(s.get('fileconveyor_queue_depth{server="local"}'), 0);
    assertEquals(s.get('fileconveyor_in_flight{server="local"}'), 0);
    assertEquals(s.get('fileconveyor_failed_files{server="local"}'), 0);
    assertEquals(s.get('fileconveyor_transfers_total{server="local"}'), 21);
    assert(s.get('fileconveyor_synced_bytes_total{server="local"}')! > 100);
    assertEquals(s.get('fileconveyor_jobs_total{server="local",result="synced"}'), 21);
    assert(
      Math.abs(
        s.get('fileconveyor_last_success_timestamp_seconds{server="local"}')! - Date.now() / 1000,
      ) < 60,
    );
    assertEquals(s.get('fileconveyor_watcher_up{source="site"}'), 1);
    assertEquals(s.get('fileconveyor_watcher_mode{source="site",mode="native"}'), 1);
    assertEquals(s.get('fileconveyor_source_files{source="site"}'), 21);
    assertEquals(s.get("fileconveyor_initial_scan_done"), 1);
    assert(!m.text.includes(ws.dst), "no configuration values in metrics");

    // /healthz and /api/status
    let h = await get(base, "/healthz");
    assertEquals(h.status, 200, h.text);
    assertEquals(JSON.parse(h.text).status, "ok");
    const st = JSON.parse((await get(base, "/api/status")).text);
    assertEquals(st.sources, [{ name: "site", path: ws.src, watch: "native", files: 21 }]);
    assertEquals(st.servers[0].name, "local");
    assertEquals(st.servers[0].synced, 21);
    assertEquals(st.servers[0].lag.transfers, 21);
    assert(st.transfers.length === 21 && st.transfers[0].file === path.join(ws.src, "later.txt"));
    assertEquals(
      st.chart.series[0].points.reduce((a: number, p: { files: number }) => a + p.files, 0),
      21,
    );

    // Protection.
    assertEquals(await getWithHost(base, "/api/status", "evil.example:80"), 421);
    assertEquals(await getWithHost(base, "/api/status", new URL(base).host), 200);
    const post = (headers: Record<string, string>, body = "{}") =>
      fetch(base + "/api/retry", { method: "POST", headers, body }).then(async (r) => ({
        status: r.status,
        text: await r.text(),
      }));
    assertEquals((await post({ "Content-Type": "application/json" })).status, 403);
    assertEquals(
      (await post({
        "Content-Type": "application/json",
        "X-Fileconveyor-Request": "1",
        Origin: "http://evil.example",
      })).status,
      403,
    );
    assertEquals(
      (await post({ "Content-Type": "text/plain", "X-Fileconveyor-Request": "1" })).status,
      415,
    );
    assertEquals(
      (await post(
        { "Content-Type": "application/json", "X-Fileconveyor-Request": "1" },
        '{"id":"x"}',
      )).status,
      400,
    );
    const ok = await post({
      "Content-Type": "application/json",
      "X-Fileconveyor-Request": "1",
      Origin: base,
    });
    assertEquals(ok.status, 200, ok.text);
    assertEquals(JSON.parse(ok.text), { requeued: 0 });
    const page = await get(base, "/");
    assertIncludes(page.headers.get("content-security-policy") ?? "", "script-src 'self'");
    assertEquals((await get(base, "/nope")).status, 404);

    // The source disappears: the watcher is missing, /healthz says so.
    fs.rmSync(ws.src, { recursive: true, force: true });
    await until(
      async () => {
        h = await get(base, "/healthz");
        return h.status === 503 ? "" : h.text;
      },
      15_000,
      "healthz 503",
    );
    assertIncludes(JSON.parse(h.text).problems.join(), 'Source "site" watcher is missing');
    assertEquals(
      checkExposition((await get(base, "/metrics")).text).get(
        'fileconveyor_watcher_up{source="site"}',
      ),
      0,
    );
    fs.mkdirSync(ws.src);
    await until(async () => ((await get(base, "/healthz")).status === 200 ? "" : "503"), 15_000);

    // FILECONVEYOR_DEBUG=http: debug lines of that component only.
    await run.waitFor(/DEBUG \[http\] GET \/metrics 200 \([\d.]+ ms\)/);
    for (const line of run.log().split("\n").filter((l) => l.includes(" DEBUG "))) {
      assertIncludes(line, "[http]");
    }
    assertEquals(await run.stop(), 0);
  } finally {
    await run.kill();
    ws.cleanup();
  }
});

Deno.test("the http setting starts the listener; a taken port is a startup error", async () => {
  const ws = workspace("fc-ops-http-setting-");
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    write(path.join(ws.src, "a.txt"), "a");
    localConfig(ws, { settings: { http: "127.0.0.1:0" } });
    const run = spawn(["sync", "--config", ws.config]);
    try {
      const base = await httpBase(run);
      assertEquals((await get(base, "/healthz")).status, 200);
      assertEquals(await run.stop(), 0);
    } finally {
      await run.kill();
    }
    const r = await cli([
      "sync",
      "--once",
      "--config",
      ws.config,
      "--http",
      `127.0.0.1:${taken.addr.port}`,
    ]);
    assertEquals(r.code, 1, r.stderr);
    assertIncludes(r.stderr, `Cannot listen on "127.0.0.1:${taken.addr.port}"`);
  } finally {
    taken.close();
    ws.cleanup();
  }
});
