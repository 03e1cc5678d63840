/**
 * `fileconveyor verify`: finds missing, stale, mismatched and orphaned
 * files, repairs them, works while the daemon runs, and checks public URLs
 * (https with verified certificates, query strings kept, timeouts, bounded
 * concurrency).
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { cli, sleep, type Workspace, workspace, write } from "../_harness.ts";
import { diffR, run, start, tempFiles, until } from "./_util.ts";
import { privateCa } from "./_tls.ts";
import { rcloneCompare, rcloneRcat, s3Remote } from "./_remote.ts";

function config(ws: Workspace, opts: { url?: string; destPath?: string; settings?: string } = {}) {
  fs.writeFileSync(
    ws.config,
    `<config>
  <sources><source name="site" scanPath="${ws.src}" /></sources>
  <servers>
    <server name="local" transporter="symlink_or_copy">
      <location>${ws.dst}</location>
      <url>${opts.url ?? "http://cdn.test/"}</url>
      <copy>true</copy>
    </server>
  </servers>
  <rules>
    <rule for="site" label="all">
      <destinations><destination server="local" path="${
      opts.destPath ?? "static"
    }" /></destinations>
    </rule>
  </rules>
  <settings>
    <dataDir>${ws.data}</dataDir>
    <settleDelay>20</settleDelay>
    ${opts.settings ?? ""}
  </settings>
</config>
`,
  );
}

function populate(src: string, n: number) {
  for (let i = 0; i < n; i++) write(path.join(src, `d${i % 4}`, `f${i}.txt`), `file ${i}\n`);
}

interface Report {
  ok: boolean;
  servers: {
    name: string;
    records: number;
    ok: number;
    pending: number;
    counts: Record<string, number>;
    problems: { kind: string; file?: string; remotePath?: string; reason: string; url?: string }[];
  }[];
  repaired: { queued: number; deleted: number; held: number };
}

async function verifyJson(ws: Workspace, extra: string[] = [], env: Record<string, string> = {}) {
  const r = await cli(["verify", "--config", ws.config, "--json", ...extra], env);
  assert(r.code === 0 || r.code === 1, `verify exit ${r.code}: ${r.stderr}`);
  return { code: r.code, report: JSON.parse(r.stdout) as Report, stderr: r.stderr };
}

Deno.test("verify: a clean sync verifies; without a database it says so", async () => {
  const ws = workspace("fc-verify-");
  try {
    populate(ws.src, 20);
    config(ws);
    let r = await cli(["verify", "--config", ws.config]);
    assertEquals(r.code, 1);
    assertIncludes(r.stderr, "has not run with this data directory yet");
    assertEquals((await cli(["sync", "--once", "--config", ws.config])).code, 0);
    r = await cli(["verify", "--config", ws.config]);
    assertEquals(r.code, 0, r.stdout + r.stderr);
    assertIncludes(r.stdout, 'Server "local" (symlink_or_copy): OK');
    const { report } = await verifyJson(ws);
    assertEquals(report.ok, true);
    assertEquals(report.servers[0]!.records, 20);
    assertEquals(report.servers[0]!.ok, 20);
  } finally {
    ws.cleanup();
  }
});

Deno.test("verify: finds missing, stale, mismatched and orphaned files; --repair converges", async () => {
  const ws = workspace("fc-verify-");
  try {
    populate(ws.src, 20);
    config(ws);
    assertEquals((await cli(["sync", "--once", "--config", ws.config])).code, 0);
    const out = path.join(ws.dst, "static");
    // Remote file gone; remote file corrupted (other size); source changed offline;
    // a source file whose record was lost (the scanner would never notice); orphans.
    fs.rmSync(path.join(out, "d0/f0.txt"));
    fs.writeFileSync(path.join(out, "d1/f1.txt"), "corrupted, longer content");
    fs.appendFileSync(path.join(ws.src, "d2/f2.txt"), "changed\n");
    const db = new DatabaseSync(path.join(ws.data, "fileconveyor.db"));
    db.prepare("DELETE FROM synced_files WHERE input_file = ?").run(path.join(ws.src, "d3/f3.txt"));
    db.close();
    write(path.join(out, "d0/orphan.txt"), "nobody synced me");
    write(path.join(out, "gone/deep/orphan2.txt"), "nor me");
    // Never touched: outside the destination path, and a temp name of an upload.
    write(path.join(ws.dst, "elsewhere/keep.txt"), "not under static/");
    write(path.join(out, "d0/.fctmp-123-f9.txt"), "partial upload");
    const before = await verifyJson(ws);
    assertEquals(before.code, 1);
    const s = before.report.servers[0]!;
    const kinds = (k: string) =>
      s.problems.filter((p) => p.kind === k).map((p) =>
        p.file ? path.relative(ws.src, p.file) : p.remotePath
      ).sort();
    assertEquals(kinds("missing"), ["d0/f0.txt", "d3/f3.txt"]);
    assertEquals(kinds("mismatch"), ["d1/f1.txt"]);
    assertEquals(kinds("stale"), ["d2/f2.txt"]);
    assertEquals(kinds("orphaned"), ["static/d0/orphan.txt", "static/gone/deep/orphan2.txt"]);
    const text = await cli(["verify", "--config", ws.config]);
    assertEquals(text.code, 1);
    assertIncludes(text.stdout, "2 missing, 1 stale, 1 mismatch, 2 orphaned");

    const repaired = await verifyJson(ws, ["--repair"]);
    assertEquals(repaired.report.repaired.queued, 4);
    assertEquals(repaired.report.repaired.deleted, 2);
    assert(!fs.existsSync(path.join(out, "d0/orphan.txt")), "orphan not deleted");
    assert(
      fs.existsSync(path.join(ws.dst, "elsewhere/keep.txt")),
      "deleted outside the destination path",
    );
    assert(fs.existsSync(path.join(out, "d0/.fctmp-123-f9.txt")), "deleted a temp file");
    fs.rmSync(path.join(out, "d0/.fctmp-123-f9.txt"));
    fs.rmSync(path.join(ws.dst, "elsewhere"), { recursive: true });

    assertEquals((await cli(["sync", "--once", "--config", ws.config])).code, 0);
    const after = await verifyJson(ws);
    assertEquals(after.code, 0, JSON.stringify(after.report.servers[0]!.problems));
    assertEquals(await diffR(ws.src, out), "");
  } finally {
    ws.cleanup();
  }
});

Deno.test("verify: a deleted source file still recorded is stale; --repair queues its deletion", async () => {
  const ws = workspace("fc-verify-");
  try {
    populate(ws.src, 30);
    config(ws);
    assertEquals((await cli(["sync", "--once", "--config", ws.config])).code, 0);
    // A deletion lost: forget the file in the source state, so no scan reports it.
    fs.rmSync(path.join(ws.src, "d1/f5.txt"));
    const db = new DatabaseSync(path.join(ws.data, "fileconveyor.db"));
    db.prepare("DELETE FROM files WHERE path = ?").run(path.join(ws.src, "d1/f5.txt"));
    db.close();
    const r = await verifyJson(ws, ["--repair"]);
    assertEquals(r.code, 1);
    const p = r.report.servers[0]!.problems;
    assertEquals(p.length, 1);
    assertEquals(p[0]!.kind, "stale");
    assertIncludes(p[0]!.reason, "source file was deleted");
    assertEquals((await cli(["sync", "--once", "--config", ws.config])).code, 0);
    assert(!fs.existsSync(path.join(ws.dst, "static/d1/f5.txt")), "remote copy not deleted");
    assertEquals((await verifyJson(ws)).code, 0);
  } finally {
    ws.cleanup();
  }
});

Deno.test("verify: --repair respects the delete guard when many sources vanished", async () => {
  const ws = workspace("fc-verify-");
  try {
    populate(ws.src, 20);
    config(ws, { settings: "<deleteGuardMinFiles>5</deleteGuardMinFiles>" });
    assertEquals((await cli(["sync", "--once", "--config", ws.config])).code, 0);
    const db = new DatabaseSync(path.join(ws.data, "fileconveyor.db"));
    for (const d of ["d0", "d1", "d2"]) {
      for (const f of fs.readdirSync(path.join(ws.src, d))) {
        db.prepare("DELETE FROM files WHERE path = ?").run(path.join(ws.src, d, f));
      }
      fs.rmSync(path.join(ws.src, d), { recursive: true });
    }
    db.close();
    const r = await verifyJson(ws, ["--repair"]);
    assertEquals(r.code, 1);
    assertEquals(r.report.repaired.held, 15);
    assertEquals(r.report.repaired.queued, 0);
    assertEquals((await cli(["sync", "--once", "--config", ws.config])).code, 0);
    assertEquals(fs.readdirSync(path.join(ws.dst, "static")).sort(), ["d0", "d1", "d2", "d3"]);
  } finally {
    ws.cleanup();
  }
});

Deno.test("verify: works while the daemon runs, and the daemon picks up --repair", async () => {
  const ws = workspace("fc-verify-");
  const d = (() => {
    populate(ws.src, 200);
    config(ws, { settings: "<rescanInterval>0</rescanInterval>" });
    return start(["sync", "--config", ws.config]);
  })();
  try {
    await d.waitFor("Initial scan done");
    await until(
      async () => (await diffR(ws.src, path.join(ws.dst, "static"))) === "",
      30_000,
      "sync",
    );
    // Churn while verifying: nothing in flight may be reported as a problem.
    let stop = false;
    const churn = (async () => {
      for (let i = 0; !stop; i++) {
        write(
          path.join(ws.src, `d${i % 4}`, `f${i % 200}.txt`),
          `rewrite ${i} ${"z".repeat(i % 500)}\n`,
        );
        write(path.join(ws.src, "new", `n${i}.txt`), `new ${i}\n`);
        await sleep(5);
      }
    })();
    let falseAlarms = 0;
    for (let i = 0; i < 4; i++) {
      const { report } = await verifyJson(ws);
      const bad = report.servers[0]!.problems.filter((p) =>
        p.kind === "orphaned" || p.kind === "mismatch" || p.kind === "error"
      );
      falseAlarms += bad.length;
      assertEquals(bad, [], "verify reported in-flight work as broken");
    }
    stop = true;
    await churn;
    // Converges; verify agrees.
    await until(async () => (await verifyJson(ws)).code === 0, 30_000, "verify clean after churn");
    assertEquals(falseAlarms, 0);
    // A remote file lost behind the daemon's back: --repair queues it, the running daemon uploads it.
    fs.rmSync(path.join(ws.dst, "static/d0/f0.txt"));
    const r = await verifyJson(ws, ["--repair"]);
    assertEquals(r.report.repaired.queued, 1);
    await until(() => fs.existsSync(path.join(ws.dst, "static/d0/f0.txt")), 10_000, "re-upload");
    assertEquals((await verifyJson(ws)).code, 0);
    assertEquals(tempFiles(ws.dst), []);
  } finally {
    await d.stop();
    ws.cleanup();
  }
});

Deno.test("verify --http-head: https with a verified certificate, query strings kept, timeouts, bounded concurrency", async () => {
  const ws = workspace("fc-verify-head-");
  const { cert, key, caFile } = await privateCa(ws.root);
  const seen: string[] = [];
  const closing = Promise.withResolvers<void>();
  let active = 0;
  let maxActive = 0;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert, key, onListen() {} },
    async (req) => {
      const u = new URL(req.url);
      seen.push(`${req.method} ${u.pathname}${u.search}`);
      active++;
      maxActive = Math.max(maxActive, active);
      try {
        await sleep(30);
        if (u.pathname.endsWith("/hang.txt")) await Promise.race([sleep(60_000), closing.promise]);
        if (u.searchParams.get("sig") !== "abc") {
          return new Response("bad signature", { status: 403 });
        }
        const file = path.join(ws.dst, decodeURIComponent(u.pathname));
        if (!file.startsWith(ws.dst + "/") || !fs.existsSync(file)) {
          return new Response("no", { status: 404 });
        }
        if (req.method === "HEAD" && u.pathname.endsWith("nohead.txt")) {
          return new Response(null, { status: 405 });
        }
        return new Response(req.method === "HEAD" ? null : fs.readFileSync(file));
      } finally {
        active--;
      }
    },
  );
  const port = server.addr.port;
  try {
    populate(ws.src, 30);
    write(path.join(ws.src, "nohead.txt"), "servers that refuse HEAD get a one-byte GET");
    write(path.join(ws.src, "hang.txt"), "this one never answers");
    config(ws, { url: `https://127.0.0.1:${port}/`, destPath: "" });
    assertEquals((await cli(["sync", "--once", "--config", ws.config])).code, 0);
    // Signed URLs (the original dropped the query string and always used plain http).
    const db = new DatabaseSync(path.join(ws.data, "fileconveyor.db"));
    db.exec("UPDATE synced_files SET url = url || '?sig=abc&expires=99'");
    db.close();
    const env = { DENO_CERT: caFile };
    const t0 = Date.now();
    const r = await verifyJson(
      ws,
      ["--http-head", "--http-timeout", "1", "--http-concurrency", "4"],
      env,
    );
    const ms = Date.now() - t0;
    const s = r.report.servers[0]!;
    const bad = s.problems.map((p) => `${p.kind} ${path.basename(p.file ?? "")} ${p.reason}`);
    assertEquals(bad.length, 1, bad.join("\n"));
    assertIncludes(bad[0]!, "unreachable hang.txt");
    assertIncludes(bad[0]!, "no answer within 1 s");
    assert(ms < 15_000, `took ${ms} ms: the timeout did not apply`);
    assert(maxActive <= 4, `${maxActive} HEAD requests at once, limit 4`);
    assert(
      seen.some((x) => x === "HEAD /d0/f0.txt?sig=abc&expires=99"),
      seen.slice(0, 5).join(", "),
    );
    assert(seen.some((x) => x.startsWith("GET /nohead.txt?sig=abc")), "no GET fallback after 405");
    // The certificate is verified: without the CA, every URL fails TLS.
    const untrusted = await verifyJson(ws, ["--http-head", "--http-timeout", "1"]);
    assertEquals(untrusted.code, 1);
    const tls = untrusted.report.servers[0]!.problems.filter((p) => p.kind === "unreachable");
    assertEquals(tls.length, 32);
    assert(
      tls.some((p) => /certificate|UnknownIssuer|invalid peer/i.test(p.reason)),
      tls[0]!.reason,
    );
  } finally {
    closing.resolve();
    await server.shutdown().catch(() => {});
    ws.cleanup();
  }
});

Deno.test("verify --http-head: usage errors exit 2", async () => {
  const ws = workspace("fc-verify-");
  try {
    config(ws);
    const r = await run(["verify", "--config", ws.config, "--http-timeout", "soon"]);
    assertEquals(r.code, 2);
    assertIncludes(r.stderr, "--http-timeout must be a positive number");
  } finally {
    ws.cleanup();
  }
});

Deno.test("verify on S3: a same-size change behind our back is caught by the checksum and repaired", async () => {
  const remote = await s3Remote();
  const ws = workspace("fc-verify-s3-");
  try {
    populate(ws.src, 12);
    fs.writeFileSync(
      ws.config,
      `<config>
  <sources><source name="site" scanPath="${ws.src}" /></sources>
  <servers>${remote.serverXml("cdn")}</servers>
  <rules><rule for="site" label="all"><destinations><destination server="cdn" path="static" /></destinations></rule></rules>
  <settings><dataDir>${ws.data}</dataDir></settings>
</config>
`,
    );
    assertEquals((await cli(["sync", "--once", "--config", ws.config])).code, 0);
    assertEquals((await verifyJson(ws)).code, 0);
    // Same size, other bytes (only a checksum can tell), written by another client; plus an orphan.
    await rcloneRcat(remote, "static/d1/f1.txt", "file X\n");
    await rcloneRcat(remote, "static/stray.txt", "stray\n");
    const r = await verifyJson(ws, ["--repair"]);
    const kinds = r.report.servers[0]!.problems.map((p) => `${p.kind} ${p.remotePath}`).sort();
    assertEquals(kinds, ["mismatch static/d1/f1.txt", "orphaned static/stray.txt"]);
    assertEquals((await cli(["sync", "--once", "--config", ws.config])).code, 0);
    assertEquals((await verifyJson(ws)).code, 0);
    assertEquals(await rcloneCompare(remote, ws.src, "static"), "");
  } finally {
    await remote.cleanup();
    ws.cleanup();
  }
});
