/**
 * The cost of a transport alone: many small `put`s through the `sftp` or
 * `s3` transport in one process, `--concurrency` at a time, with the CPU
 * time of the puts only (no start-up, no daemon). With `--baseline
 * OTHER_CHECKOUT`, that checkout's transport runs in the same rotation
 * (alternating order, one child process per round and checkout), so a
 * before/after ratio comes from one run on a shared machine.
 *
 * `deno run -A scripts/bench/transport_cpu.ts [--dest sftp|s3] [--files N]
 * [--rounds N] [--concurrency N] [--baseline DIR] [--ceiling]`
 *
 * `--ceiling` (S3) adds the minimal fetch+SigV4 client of `ceiling.ts` to
 * the rotation. Uses the test servers (started if needed, never stopped).
 *
 * @module
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { startServer } from "../../tests/_servers.ts";
import { makeTree, median, rmTree, say } from "./_util.ts";

const ROOT = path.resolve(import.meta.dirname!, "..", "..");

interface ChildResult {
  files: number;
  ms: number;
  cpuMs: number;
}

function walk(root: string, dir = root, out: { path: string; key: string; size: number }[] = []) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory()) walk(root, p, out);
    else if (e.isFile()) {
      out.push({ path: p, key: p.slice(root.length + 1), size: fs.statSync(p).size });
    }
  }
  return out;
}

/** Child: puts every file of `src` through `root`'s transport; prints a ChildResult. */
async function child(root: string, kind: string, src: string, dest: string, n: number) {
  const files = walk(src);
  if (kind === "ceiling") {
    const { putAll } = await import(path.join(ROOT, "scripts/bench/ceiling.ts"));
    const info = await startServer("swift");
    const cpu0 = process.cpuUsage();
    const r = await putAll(
      {
        endpoint: info.s3Endpoint,
        accessKeyId: info.accessKeyId,
        secretAccessKey: info.secretAccessKey,
        region: info.region,
        bucket: dest,
      },
      files,
      n,
    );
    const cpu = process.cpuUsage(cpu0);
    return { files: files.length, ms: r.ms, cpuMs: (cpu.user + cpu.system) / 1000 };
  }
  await import(path.join(root, "src/transports/mod.ts"));
  const { getTransportDef } = await import(path.join(root, "src/transports/transport.ts"));
  const { checkOptions } = await import(path.join(root, "src/options.ts"));
  const { logger } = await import(path.join(root, "src/log.ts"));
  const def = getTransportDef(kind)!;
  let settings: Record<string, string>;
  if (kind === "sftp") {
    const info = await startServer("sftp");
    settings = {
      host: info.host,
      port: String(info.port),
      username: info.username,
      key: info.keyPath,
      known_hosts: info.knownHostsPath,
      path: dest,
      url: "http://cdn.test/",
    };
  } else {
    const info = await startServer("swift");
    settings = {
      access_key_id: info.accessKeyId,
      secret_access_key: info.secretAccessKey,
      bucket_name: dest,
      endpoint: info.s3Endpoint,
      region: info.region,
      force_path_style: "true",
      checksum: "when_required",
      create_bucket: "true",
      url: "http://cdn.test/",
    };
  }
  const { values, problems } = checkOptions(def.options, settings);
  if (problems.length) throw new Error(JSON.stringify(problems));
  const t = await def.create(values, {
    serverName: "bench",
    log: logger(`${kind}:bench`),
    maxConnections: n,
    timeoutMs: 60_000,
    sourceRoots: [],
    stateDir: fs.mkdtempSync(path.join(os.tmpdir(), "fc-tcpu-")),
  });
  const signal = new AbortController().signal;
  // One put first: connects and creates the bucket outside the measurement.
  await t.put(files[0]!.path, files[0]!.key, { signal, size: files[0]!.size, unprocessed: false });
  let next = 1;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < files.length) {
      const f = files[next++]!;
      await t.put(f.path, f.key, { signal, size: f.size, unprocessed: false });
    }
  }));
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  await t.close();
  return { files: files.length - 1, ms, cpuMs: (cpu.user + cpu.system) / 1000 };
}

const args = Deno.args;
if (args[0] === "--child") {
  const [, root, kind, src, dest, n] = args;
  const r = await child(root!, kind!, src!, dest!, Number(n));
  // deno-lint-ignore no-console
  console.log(JSON.stringify(r));
  Deno.exit(0);
}

const opt = (name: string, fallback: string) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
};
const kind = opt("--dest", "sftp");
const files = Number(opt("--files", "2000"));
const rounds = Number(opt("--rounds", "3"));
const n = Number(opt("--concurrency", "8"));
const baseline = opt("--baseline", "");
const variants: { name: string; root: string; kind: string }[] = [
  { name: "this checkout", root: ROOT, kind },
];
if (baseline) variants.push({ name: "baseline", root: path.resolve(baseline), kind });
if (args.includes("--ceiling")) {
  variants.push({ name: "minimal client", root: ROOT, kind: "ceiling" });
}

const shm = fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();
const src = fs.mkdtempSync(path.join(shm, "fc-tcpu-src-"));
const info = kind === "sftp" ? await startServer("sftp") : undefined;
if (kind === "s3") await startServer("swift");
try {
  makeTree(src, { files, dirs: Math.ceil(files / 100), minBytes: 1024, maxBytes: 8192, seed: 1 });
  const results = new Map<string, ChildResult[]>(variants.map((v) => [v.name, []]));
  for (let r = 0; r < rounds; r++) {
    const order = variants.map((_, j) => variants[(r + j) % variants.length]!);
    for (const v of order) {
      const dest = `tcpu-${Date.now().toString(36)}-${r}`;
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", import.meta.filename!, "--child", v.root, v.kind, src, dest, String(n)],
        stdout: "piped",
        stderr: "inherit",
      }).output();
      if (info) rmTree(path.join(info.root, dest));
      if (!out.success) throw new Error(`${v.name} failed`);
      const res = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop()!);
      results.get(v.name)!.push(res);
      say(
        `round ${r + 1} ${v.name}: ${(res.cpuMs / res.files).toFixed(3)} ms CPU/put, ` +
          `${(res.ms / 1000).toFixed(2)} s`,
      );
    }
  }
  const first = median(results.get(variants[0]!.name)!.map((x) => x.cpuMs / x.files));
  for (const v of variants) {
    const rs = results.get(v.name)!;
    const cpu = median(rs.map((x) => x.cpuMs / x.files));
    say(
      `${kind} ${v.name.padEnd(16)} CPU/put median ${cpu.toFixed(3)} ms ` +
        `(${rs.map((x) => (x.cpuMs / x.files).toFixed(3)).join(", ")}); wall median ` +
        `${(median(rs.map((x) => x.ms)) / 1000).toFixed(2)} s; this checkout ÷ it ${
          (first / cpu).toFixed(2)
        }`,
    );
  }
} finally {
  rmTree(src);
}
