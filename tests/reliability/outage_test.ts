/**
 * Destination outages, behind a TCP proxy this test controls (so other
 * tests sharing the real server see nothing): a server gone for 30 s in the
 * middle of a sync backs off, shows as failing with the reason in `status`,
 * and converges once it is back; a server that never comes back does not
 * grow the daemon's memory or hold up a second, healthy destination.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals } from "../_assert.ts";
import { cli, sleep, type Workspace, workspace, write } from "../_harness.ts";
import { blackHoleServer } from "../_blackhole.ts";
import { hasTransport, rcloneCompare, type Remote, s3Remote, sftpRemote } from "./_remote.ts";
import { diffR, figure, memory, mode, type Proc, randomBytes, start, until } from "./_util.ts";
import { TcpProxy } from "../_proxy.ts";

function config(ws: Workspace, remoteXml: string, settings = "") {
  fs.writeFileSync(
    ws.config,
    `<config>
  <sources><source name="site" scanPath="${ws.src}" /></sources>
  <servers>
    ${remoteXml}
    <server name="healthy" transporter="symlink_or_copy">
      <location>${ws.dst}</location>
      <url>http://cdn.test/</url>
      <copy>true</copy>
    </server>
  </servers>
  <rules>
    <rule for="site" label="all">
      <destinations>
        <destination server="remote" path="site" />
        <destination server="healthy" />
      </destinations>
    </rule>
  </rules>
  <settings>
    <dataDir>${ws.data}</dataDir>
    <settleDelay>20</settleDelay>
    <retryInitialDelay>1</retryInitialDelay>
    <retryMaxDelay>8</retryMaxDelay>
    <timeout>5</timeout>
    <rescanInterval>0</rescanInterval>
    ${settings}
  </settings>
</config>
`,
  );
}

interface ServerStatus {
  name: string;
  queued: number;
  failingSince: number | null;
  lastError: string | null;
}

async function servers(ws: Workspace): Promise<Map<string, ServerStatus>> {
  const r = await cli(["status", "--config", ws.config, "--json"]);
  const s = JSON.parse(r.stdout) as { servers: ServerStatus[] };
  return new Map(s.servers.map((x) => [x.name, x]));
}

function pauses(log: string): number[] {
  return [...log.matchAll(/\[\w+:remote\] [^\n]*pausing server for (\d+) s/g)].map((m) =>
    Number(m[1])
  );
}

async function outage(remote: Remote) {
  const ws = workspace(`fc-outage-${remote.kind}-`);
  const proxy = TcpProxy.start(remote.port);
  let d: Proc | undefined;
  try {
    for (let i = 0; i < 60; i++) {
      write(
        path.join(ws.src, `d${i % 5}`, `f${i}.bin`),
        randomBytes(i % 10 === 0 ? 2_000_000 : 20_000),
      );
    }
    config(ws, remote.serverXml("remote", { port: proxy.port }));
    d = start(["sync", "--config", ws.config]);
    // In the middle of the sync: the server goes away for 30 s.
    await d.waitFor(/\[\w+:remote\] (uploaded|updated)/, 60_000);
    proxy.down();
    const downAt = Date.now();
    // Changes during the outage reach the healthy destination at once.
    for (let i = 0; i < 10; i++) {
      write(path.join(ws.src, "during", `x${i}.txt`), `during outage ${i}\n`);
    }
    await until(
      () => fs.existsSync(path.join(ws.dst, "during/x9.txt")),
      15_000,
      "the healthy destination",
    );
    const healthyLagMs = Date.now() - downAt;
    const st = await until(
      async () => {
        const s = (await servers(ws)).get("remote")!;
        return s.failingSince && s.lastError ? s : undefined;
      },
      20_000,
      "status to show the remote failing",
    );
    // The reason names the server and what went wrong (refused, reset, no response…).
    assert(
      /server "remote"/.test(st.lastError!) &&
        /refused|reset|connect|closed|unreachable|ECONN|timed out|no response/i.test(st.lastError!),
      st.lastError!,
    );
    assertEquals((await servers(ws)).get("healthy")!.failingSince, null);
    await sleep(Math.max(0, 30_000 - (Date.now() - downAt)));
    const p = pauses(d.log());
    // Backs off: the pauses grow (1, 2, 4, 8 s with jitter), not one retry per file.
    assert(p.length >= 2 && p.length <= 12, `pauses: ${p.join(", ")}`);
    assert(p.at(-1)! > p[0]!, `no backoff: ${p.join(", ")}`);
    proxy.up();
    const upAt = Date.now();
    await until(
      async () => (await rcloneCompare(remote, ws.src, "site")) === "",
      60_000,
      "the remote after the outage",
      1000,
    );
    const recoverMs = Date.now() - upAt;
    assertEquals(await diffR(ws.src, ws.dst), "");
    await until(
      async () => (await servers(ws)).get("remote")!.failingSince === null,
      10_000,
      "status ok again",
    );
    const v = await cli(["verify", "--config", ws.config]);
    assertEquals(v.code, 0, v.stdout);
    figure(`outage.${remote.kind}`, {
      downMs: upAt - downAt,
      pausesS: p,
      recoverMs,
      healthyLagMs,
      lastError: st.lastError,
      proxiedConnections: proxy.accepted,
    });
  } finally {
    await d?.stop();
    proxy.close();
    await remote.cleanup();
    ws.cleanup();
  }
}

async function deadServer() {
  if (!hasTransport("sftp")) throw new Error("The sftp transport is not registered");
  const ws = workspace("fc-deadserver-");
  // Accepts connections and never answers: the worst case (timeouts, not refusals).
  const hole = blackHoleServer();
  const remote = await sftpRemote();
  let d: Proc | undefined;
  try {
    for (let i = 0; i < 50; i++) write(path.join(ws.src, "seed", `s${i}.txt`), `seed ${i}\n`);
    config(ws, remote.serverXml("remote", { port: hole.port }));
    d = start(["sync", "--config", ws.config]);
    await d.waitFor("Initial scan done");
    const duration = mode(40_000, 300_000);
    const samples: { t: number; rssKiB: number }[] = [];
    const lags: number[] = [];
    const t0 = Date.now();
    let n = 0;
    while (Date.now() - t0 < duration) {
      // A steady stream of new files: the dead server's queue grows, the healthy one keeps up.
      const p = path.join(ws.src, `live${n % 20}`, `n${n}.txt`);
      write(p, `file ${n} ${"x".repeat(n % 3000)}\n`);
      const created = Date.now();
      const target = path.join(ws.dst, `live${n % 20}`, `n${n}.txt`);
      if (n % 10 === 0) {
        await until(
          () => fs.existsSync(target),
          10_000,
          `file ${n} at the healthy destination`,
          20,
        );
        lags.push(Date.now() - created);
      }
      n++;
      const m = memory(d.pid);
      if (m && (samples.length === 0 || Date.now() - samples.at(-1)!.t >= 2000)) {
        samples.push({ t: Date.now() - t0, rssKiB: m.rss });
      }
      await sleep(50);
    }
    await until(
      async () => (await diffR(ws.src, ws.dst)) === "",
      20_000,
      "healthy destination complete",
    );
    const st = (await servers(ws)).get("remote")!;
    assert(st.failingSince !== null && st.lastError, JSON.stringify(st));
    assert(st.queued >= n, `remote queue ${st.queued}, files ${n}`);
    // Memory: compare the first third (after warm-up) with the last third.
    const third = Math.floor(samples.length / 3);
    const avg = (xs: typeof samples) =>
      xs.reduce((a, x) => a + x.rssKiB, 0) / Math.max(1, xs.length);
    const early = avg(samples.slice(1, third + 1));
    const late = avg(samples.slice(-third));
    const growthMiB = (late - early) / 1024;
    lags.sort((a, b) => a - b);
    figure("deadServer", {
      seconds: duration / 1000,
      files: n,
      remoteQueued: st.queued,
      rssEarlyMiB: Math.round(early / 1024),
      rssLateMiB: Math.round(late / 1024),
      rssMaxMiB: Math.round(Math.max(...samples.map((s) => s.rssKiB)) / 1024),
      healthyLagP50Ms: lags[Math.floor(lags.length / 2)],
      healthyLagMaxMs: lags.at(-1),
      lastError: st.lastError,
    });
    assert(growthMiB < 40, `RSS grew ${growthMiB.toFixed(1)} MiB with a dead server`);
    assert(lags.at(-1)! < 5000, `the healthy destination lagged ${lags.at(-1)} ms`);
  } finally {
    await d?.stop();
    hole.close();
    await remote.cleanup();
    ws.cleanup();
  }
}

/** Runs scenarios at once (they mostly wait) and reports every failure. */
async function together(scenarios: Record<string, () => Promise<void>>) {
  const names = Object.keys(scenarios);
  const results = await Promise.allSettled(names.map((n) => scenarios[n]!()));
  const failures = results.flatMap((r, i) =>
    r.status === "rejected" ? [`${names[i]}: ${(r.reason as Error)?.stack ?? r.reason}`] : []
  );
  if (failures.length > 0) throw new Error(failures.join("\n\n"));
}

Deno.test("outage: SFTP and S3 servers gone for 30 s mid-sync back off, show why, and converge; a server that never comes back keeps memory flat and the healthy destination syncing", async () => {
  await together({
    "sftp outage": async () => {
      if (!hasTransport("sftp")) throw new Error("The sftp transport is not registered");
      await outage(await sftpRemote());
    },
    "s3 outage": async () => {
      if (!hasTransport("s3")) throw new Error("The s3 transport is not registered");
      await outage(await s3Remote());
    },
    "dead server": deadServer,
  });
});
