/**
 * `fileconveyor verify`: compares the synced-files record with what each
 * destination really holds and with the source trees, and optionally
 * repairs the difference.
 *
 * What is checked, per server:
 * - every record: the remote file exists (via the transport's
 *   {@linkcode Stater}), with the recorded checksum (MD5 or ETag) when the
 *   server reports one and the size when no processor changed the file; the
 *   source file still has the recorded size, mtime, ctime and inode
 *   (otherwise the record is **stale**); optionally the public URL answers an
 *   HTTP HEAD (`--http-head`, with https, query strings, a timeout and
 *   bounded concurrency — the original `verify.py` had none of these);
 * - every source file the rules send to the server has a record (otherwise
 *   it is **missing**);
 * - every remote file below the destination paths the rules use has a
 *   record (via the transport's {@linkcode Lister}; otherwise it is
 *   **orphaned**).
 *
 * Work that is queued (the daemon has not finished it yet) is reported as
 * pending, not as a problem; a job that failed is a problem. Works while the
 * daemon runs: it reads a consistent snapshot of the database (WAL readers
 * never block the writer) and confirms every problem against fresh rows
 * before reporting it.
 *
 * `--repair` converges: missing, stale and mismatched files are queued as
 * MODIFIED jobs that always run (force 2), records of deleted sources are
 * queued as deletions (within the delete guard), and orphans are deleted
 * remotely — only below the destination paths the rules use, never a temp
 * name, never a path a running upload has announced.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Config, Server, Source } from "../config/types.ts";
import { errorMessage } from "../errors.ts";
import { matchingRules } from "../filter/filter.ts";
import { logger, redact } from "../log.ts";
import { dataDirFor, workDirFor } from "../pipeline/paths.ts";
import { type Change, type Job, Store, type SyncedRow } from "../store/store.ts";
import { DELETED, MODIFIED } from "../store/events.ts";
import { isTempName, joinRemote } from "../transports/paths.ts";
import {
  getTransportDef,
  isLister,
  isStater,
  type RemoteStat,
  type Transport,
} from "../transports/transport.ts";

/** Kinds of problems `verify` reports. */
export type ProblemKind =
  /** A source file the rules send here has no record, or the remote file is gone. */
  | "missing"
  /** The source file changed (or was deleted) since it was synced. */
  | "stale"
  /** The remote file differs from the record (size or checksum). */
  | "mismatch"
  /** A remote file below a destination path that no record accounts for. */
  | "orphaned"
  /** The public URL does not answer 2xx to HEAD. */
  | "unreachable"
  /** The check itself failed (server down, permission denied…). */
  | "error";

/** One difference found. */
export interface Problem {
  kind: ProblemKind;
  /** Source file (absolute), when the problem concerns one. */
  file?: string;
  /** Destination path (`dest`) of the record or rule. */
  dest?: string;
  /** Remote path, when known. */
  remotePath?: string;
  /** Public URL (for `unreachable`). */
  url?: string;
  /** What exactly is wrong. */
  reason: string;
  /** What `--repair` did about it, if anything. */
  repaired?: string;
}

/** The report of one server. */
export interface ServerVerify {
  name: string;
  transporter: string;
  /** Which checks the transport supports. */
  capabilities: { stat: boolean; list: boolean };
  /** Synced records checked. */
  records: number;
  /** Source files whose rules send them to this server. */
  sourceFiles: number;
  /** Remote files listed below the destination paths (when the transport can list). */
  remoteFiles: number;
  /** URLs checked with HEAD. */
  urls: number;
  ok: number;
  /** Files with queued work the daemon has not finished. */
  pending: number;
  counts: Record<ProblemKind, number>;
  problems: Problem[];
}

/** The whole report. */
export interface VerifyReport {
  ok: boolean;
  daemonRunning: boolean;
  repair: boolean;
  sources: { name: string; scanPath: string; present: boolean }[];
  servers: ServerVerify[];
  /** Things that could not be checked and do not count as problems. */
  warnings: string[];
  repaired: { queued: number; deleted: number; held: number };
  ms: number;
}

/** Options for {@linkcode verify}. */
export interface VerifyOptions {
  /** Overrides the data directory. */
  dataDir?: string;
  /** Queue or delete what is needed to converge. */
  repair?: boolean;
  /** Also HEAD every public URL. */
  httpHead?: boolean;
  /** Only this server. */
  server?: string;
  /** Concurrent remote calls per server (default: the server's connection limit, at most 16). */
  concurrency?: number;
  /** Timeout of one HTTP HEAD request, milliseconds (default 10 000). */
  headTimeoutMs?: number;
  /** Concurrent HEAD requests (default 8). */
  headConcurrency?: number;
  /** Aborts the run. */
  signal?: AbortSignal;
}

const KINDS: ProblemKind[] = ["missing", "stale", "mismatch", "orphaned", "unreachable", "error"];

interface SourceFile {
  source: Source;
  path: string;
  rel: string;
  st: fs.Stats;
}

/** A source file's fingerprint as the pipeline records it. */
function sameFingerprint(row: SyncedRow, st: fs.Stats): boolean {
  return row.size === st.size && row.mtime_ms === st.mtimeMs && row.ctime_ms === st.ctimeMs &&
    row.ino === st.ino;
}

/** Stats a source file like the scanner: symlinks are followed only within the source. */
function statSource(p: string, source: Source): fs.Stats | undefined {
  try {
    const l = fs.lstatSync(p);
    if (l.isFile()) return l;
    if (!l.isSymbolicLink()) return undefined;
    const real = fs.realpathSync(p);
    if (!real.startsWith(source.scanPath + path.sep)) return undefined;
    const t = fs.statSync(p);
    return t.isFile() ? t : undefined;
  } catch {
    return undefined;
  }
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Walks a source tree with the scanner's rules (ignored dirs, temp names, excluded dirs, links). */
function walkSource(
  source: Source,
  ignoredDirs: readonly string[],
  exclude: readonly string[],
  warnings: string[],
): SourceFile[] {
  const out: SourceFile[] = [];
  const excluded = (p: string) => exclude.some((e) => p === e || p.startsWith(e + path.sep));
  const stack = [source.scanPath];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch (e) {
      warnings.push(`Cannot read directory "${dir}": ${errorMessage(e)}`);
      continue;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (excluded(p) || isTempName(e.name)) continue;
      if (e.isDirectory()) {
        if (!ignoredDirs.includes(e.name)) stack.push(p);
        continue;
      }
      const st = statSource(p, source);
      if (!st) continue;
      out.push({
        source,
        path: p,
        rel: path.relative(source.scanPath, p).split(path.sep).join("/"),
        st,
      });
    }
  }
  return out;
}

/** Runs `fn` over `items` with at most `limit` calls at once (workers, no promise per item). */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}

/**
 * Checks a public URL with HEAD (GET of one byte when HEAD is refused).
 * Returns undefined when it answers 2xx, else the reason.
 */
export async function checkUrl(url: string, timeoutMs: number): Promise<string | undefined> {
  const attempt = async (method: "HEAD" | "GET") => {
    const res = await fetch(url, {
      method,
      redirect: "follow",
      signal: AbortSignal.timeout(timeoutMs),
      ...(method === "GET" ? { headers: { Range: "bytes=0-0" } } : {}),
    });
    await res.body?.cancel().catch(() => {});
    return res.status;
  };
  try {
    let status = await attempt("HEAD");
    if (status === 405 || status === 501) status = await attempt("GET");
    return status >= 200 && status < 300 ? undefined : `HTTP ${status}`;
  } catch (e) {
    const err = e as Error;
    if (err.name === "TimeoutError") return `no answer within ${timeoutMs / 1000} s`;
    const cause = (err as { cause?: unknown }).cause;
    return cause ? `${err.message}: ${errorMessage(cause)}` : err.message;
  }
}

function daemonRunning(store: Store): boolean {
  const d = store.getRuntime<{ pid: number | null; heartbeat?: number }>("daemon");
  if (!d?.pid || !d.heartbeat || Date.now() - d.heartbeat > 15_000) return false;
  return Deno.build.os !== "linux" || fs.existsSync(`/proc/${d.pid}`);
}

function key(file: string, server: string, dest: string): string {
  return `${file}\0${server}\0${dest}`;
}

function parseExtras(json: string | null): string[] {
  if (!json) return [];
  try {
    return JSON.parse(json) as string[];
  } catch {
    return [];
  }
}

function sameChecksum(row: SyncedRow, st: RemoteStat): string | undefined {
  if (row.md5 && st.md5) {
    return row.md5.toLowerCase() === st.md5.toLowerCase()
      ? undefined
      : `remote MD5 ${st.md5} differs from the recorded ${row.md5}`;
  }
  const unq = (e: string) => e.replace(/^W\//, "").replace(/"/g, "");
  if (row.etag && st.etag && unq(row.etag) !== unq(st.etag)) {
    return `remote ETag ${st.etag} differs from the recorded ${row.etag}`;
  }
  return undefined;
}

/** The source a path belongs to. */
function sourceOf(config: Config, p: string): Source | undefined {
  return config.sources.find((s) => p.startsWith(s.scanPath + path.sep));
}

/**
 * Verifies every server (or one) of `config` against the data directory's
 * record. Never throws for a server problem: each is reported.
 */
export async function verify(config: Config, options: VerifyOptions = {}): Promise<VerifyReport> {
  const t0 = performance.now();
  const dataDir = dataDirFor(config, options.dataDir);
  const store = new Store(dataDir, { readOnly: !options.repair });
  try {
    return await run(config, store, dataDir, options, t0);
  } finally {
    store.close();
  }
}

async function run(
  config: Config,
  store: Store,
  dataDir: string,
  o: VerifyOptions,
  t0: number,
): Promise<VerifyReport> {
  const signal = o.signal ?? new AbortController().signal;
  const report: VerifyReport = {
    ok: true,
    daemonRunning: daemonRunning(store),
    repair: !!o.repair,
    sources: [],
    servers: [],
    warnings: [],
    repaired: { queued: 0, deleted: 0, held: 0 },
    ms: 0,
  };
  const exclude = [dataDir, workDirFor(config, dataDir), ...(config.excludedDirs ?? [])];

  // The source trees, walked once.
  const files: SourceFile[] = [];
  const present = new Set<string>();
  for (const s of config.sources) {
    const here = isDir(s.scanPath);
    report.sources.push({ name: s.name, scanPath: s.scanPath, present: here });
    if (!here) {
      report.warnings.push(
        `Source "${s.name}" ("${s.scanPath}") is missing: its files are not compared and nothing is deleted`,
      );
      continue;
    }
    present.add(s.name);
    files.push(...walkSource(s, config.ignoredDirs, exclude, report.warnings));
  }
  const byPath = new Map(files.map((f) => [f.path, f]));

  // One consistent snapshot of the record and the queue.
  let rows: SyncedRow[] = [];
  let queue: Job[] = [];
  let intents: { server: string; remote_path: string }[] = [];
  store.db.exec("BEGIN");
  try {
    rows = store.q("SELECT * FROM synced_files ORDER BY server, input_file")
      .all() as unknown as SyncedRow[];
    queue = store.q("SELECT * FROM queue").all() as unknown as Job[];
    intents = store.q("SELECT server, remote_path FROM intents").all() as unknown as typeof intents;
  } finally {
    store.db.exec("COMMIT");
  }
  const queued = new Map(queue.map((j) => [key(j.input_file, j.server, j.dest), j]));
  const known = new Set(config.servers.map((s) => s.name));
  const strays = [...new Set(rows.map((r) => r.server).filter((n) => !known.has(n)))];
  if (strays.length > 0) {
    report.warnings.push(
      `Records for servers no longer in the configuration were not checked: ${strays.join(", ")}`,
    );
  }

  const changes: Change[] = [];
  const now = Date.now();
  for (const server of config.servers) {
    if (o.server && server.name !== o.server) continue;
    const sv = await verifyServer(config, server, {
      store,
      dataDir,
      files,
      byPath,
      present,
      rows: rows.filter((r) => r.server === server.name),
      queued,
      intents: new Set(intents.filter((i) => i.server === server.name).map((i) => i.remote_path)),
      opts: o,
      signal,
      changes,
      report,
    });
    report.servers.push(sv);
  }
  if (o.server && report.servers.length === 0) {
    report.warnings.push(`No server named "${o.server}" in the configuration`);
    report.ok = false;
  }
  if (o.repair && changes.length > 0) {
    store.tx(() => store.enqueue(changes, now, 0, config.settings.deleteDelay));
    report.repaired.queued = changes.length;
  }
  for (const s of report.servers) {
    for (const k of KINDS) s.counts[k] = s.problems.filter((p) => p.kind === k).length;
    if (s.problems.length > 0) report.ok = false;
  }
  report.ms = Math.round(performance.now() - t0);
  return report;
}

interface Ctx {
  store: Store;
  dataDir: string;
  files: SourceFile[];
  byPath: Map<string, SourceFile>;
  present: Set<string>;
  rows: SyncedRow[];
  queued: Map<string, Job>;
  intents: Set<string>;
  opts: VerifyOptions;
  signal: AbortSignal;
  changes: Change[];
  report: VerifyReport;
}

async function openTransport(config: Config, server: Server, dataDir: string): Promise<Transport> {
  const def = getTransportDef(server.transporter);
  if (!def) throw new Error(`Transporter "${server.transporter}" is not available in this build`);
  const max = server.maxConnections > 0
    ? server.maxConnections
    : config.settings.defaultMaxConnections;
  return await def.create(server.settings, {
    serverName: server.name,
    log: logger(`verify:${server.name}`),
    maxConnections: max,
    timeoutMs: config.settings.timeout * 1000,
    sourceRoots: config.sources.map((s) => s.scanPath),
    stateDir: path.join(dataDir, "servers", server.name.replace(/[^\w.-]/g, "_")),
  });
}

async function verifyServer(config: Config, server: Server, c: Ctx): Promise<ServerVerify> {
  const sv: ServerVerify = {
    name: server.name,
    transporter: server.transporter,
    capabilities: { stat: false, list: false },
    records: c.rows.length,
    sourceFiles: 0,
    remoteFiles: 0,
    urls: 0,
    ok: 0,
    pending: 0,
    counts: Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<ProblemKind, number>,
    problems: [],
  };
  const repair = !!c.opts.repair;
  const limit = c.opts.concurrency ??
    Math.min(
      16,
      server.maxConnections > 0 ? server.maxConnections : config.settings.defaultMaxConnections,
    );
  const queue = (row: { input_file: string; dest: string }, source: Source, event = MODIFIED) => {
    c.changes.push({
      input_file: row.input_file,
      source: source.name,
      server: server.name,
      dest: row.dest,
      event: event as typeof MODIFIED,
      force: 2,
    });
  };
  const pendingFor = (file: string, dest: string) => {
    const j = c.queued.get(key(file, server.name, dest));
    return j && j.state === "queued" ? j : undefined;
  };

  let transport: Transport | undefined;
  try {
    transport = await openTransport(config, server, c.dataDir);
  } catch (e) {
    sv.problems.push({
      kind: "error",
      reason: `Cannot open server "${server.name}": ${errorMessage(e)}`,
    });
    return sv;
  }
  try {
    sv.capabilities = { stat: isStater(transport), list: isLister(transport) };
    const t = transport;

    // 1. Every record against the source and the destination.
    const recorded = new Set(c.rows.map((r) => key(r.input_file, r.server, r.dest)));
    const sourceGone: { row: SyncedRow; source: Source; problem: Problem }[] = [];
    const knownRemote = new Set<string>();
    for (const r of c.rows) {
      knownRemote.add(r.remote_path);
      for (const x of parseExtras(r.extras)) knownRemote.add(x);
    }
    let serverDown: string | undefined;
    await pool(c.rows, limit, async (row) => {
      if (pendingFor(row.input_file, row.dest)) {
        sv.pending++;
        return;
      }
      const source = sourceOf(config, row.input_file);
      const checked = await checkRecord(config, t, row, source, c, () => !!serverDown).catch(
        (e) => {
          serverDown ??= errorMessage(e);
          return undefined;
        },
      );
      if (!checked) {
        sv.ok++;
        return;
      }
      // Confirm against fresh rows: the daemon may have moved on since the snapshot.
      const fresh = c.store.getSynced(row.input_file, row.server, row.dest);
      const nowQueued = c.store.q(
        "SELECT state FROM queue WHERE input_file = ? AND server = ? AND dest = ?",
      ).get(row.input_file, row.server, row.dest) as { state: string } | undefined;
      if (nowQueued?.state === "queued") {
        sv.pending++;
        return;
      }
      if (!fresh || fresh.synced_at !== row.synced_at) {
        // Deleted or synced again meanwhile.
        sv.ok++;
        return;
      }
      const { problem, gone } = checked;
      if (gone && source) sourceGone.push({ row, source, problem });
      else if (repair && source) {
        queue(row, source);
        problem.repaired = "queued for upload";
      }
      sv.problems.push(problem);
    });
    if (serverDown) {
      sv.problems.push({
        kind: "error",
        reason: `Cannot check files on server "${server.name}": ${serverDown}`,
      });
    }

    // Deletions that never reached the server: queue them, within the delete guard.
    if (repair && sourceGone.length > 0) {
      const bySource = new Map<string, typeof sourceGone>();
      for (const g of sourceGone) {
        const l = bySource.get(g.source.name) ?? [];
        l.push(g);
        bySource.set(g.source.name, l);
      }
      for (const [name, list] of bySource) {
        const known = c.rows.filter((r) => sourceOf(config, r.input_file)?.name === name).length;
        const s = config.settings;
        if (list.length >= s.deleteGuardMinFiles && list.length > s.deleteGuardShare * known) {
          c.report.repaired.held += list.length;
          c.report.warnings.push(
            `Delete guard: source "${name}" lost ${list.length} of ${known} synced files on server "${server.name}"; ` +
              `no deletion was queued (run "fileconveyor sync --approve-deletes" if this is intended)`,
          );
          for (const g of list) g.problem.repaired = "held by the delete guard";
          continue;
        }
        for (const g of list) {
          queue(g.row, g.source, DELETED);
          g.problem.repaired = "queued for deletion";
        }
      }
    }

    // 2. Every source file the rules send here has a record.
    const recentMs = 10_000;
    const nowMs = Date.now();
    const seen = new Set<string>();
    const expected = new Set<string>();
    for (const f of c.files) {
      for (
        const rule of matchingRules(config.rules, f.source, {
          path: f.path,
          rel: f.rel,
          size: f.st.size,
        })
      ) {
        for (const d of rule.destinations) {
          if (d.server !== server.name) continue;
          const k = key(f.path, server.name, d.path);
          if (seen.has(k)) continue;
          seen.add(k);
          sv.sourceFiles++;
          if (recorded.has(k)) continue;
          if (pendingFor(f.path, d.path)) {
            sv.pending++;
            continue;
          }
          if (c.store.getSynced(f.path, server.name, d.path)) {
            sv.ok++;
            continue;
          }
          const fresh = c.store.q(
            "SELECT state, last_error FROM queue WHERE input_file = ? AND server = ? AND dest = ?",
          ).get(f.path, server.name, d.path) as
            | { state: string; last_error: string | null }
            | undefined;
          if (
            fresh?.state === "queued" || (c.report.daemonRunning && nowMs - f.st.ctimeMs < recentMs)
          ) {
            // Queued meanwhile, or so recent that the daemon has not picked it up yet.
            sv.pending++;
            continue;
          }
          // Its remote copy (if any) is replaced by the upload, not an orphan to delete.
          if (rule.processors.length === 0) expected.add(joinRemote(d.path, f.rel));
          const problem: Problem = {
            kind: "missing",
            file: f.path,
            dest: d.path,
            reason: fresh?.state === "failed"
              ? `its sync failed: ${fresh.last_error ?? "unknown error"}`
              : "the source file is not synced to this server",
          };
          if (repair) {
            queue({ input_file: f.path, dest: d.path }, f.source);
            problem.repaired = "queued for upload";
          }
          sv.problems.push(problem);
        }
      }
    }

    // 3. Remote files without a record (orphans), below the destination paths of the rules.
    if (isLister(t)) {
      const prefixes = [
        ...new Set(
          config.rules.flatMap((r) => r.destinations.filter((d) => d.server === server.name)).map((
            d,
          ) => d.path),
        ),
      ].sort();
      const roots = prefixes.filter((p) =>
        !prefixes.some((q) => q !== p && (q === "" || p.startsWith(q + "/")))
      );
      const orphans: string[] = [];
      try {
        for (const prefix of roots) {
          for await (const e of t.list(prefix, { signal: c.signal })) {
            sv.remoteFiles++;
            const base = e.path.slice(e.path.lastIndexOf("/") + 1);
            if (
              isTempName(base) || knownRemote.has(e.path) || c.intents.has(e.path) ||
              expected.has(e.path)
            ) continue;
            orphans.push(e.path);
          }
        }
      } catch (e) {
        sv.problems.push({
          kind: "error",
          reason: `Cannot list server "${server.name}": ${errorMessage(e)}`,
        });
      }
      for (const p of orphans) {
        // Confirm: recorded or announced since the snapshot means an upload is under way.
        const inUse = () =>
          c.store.remotePathInUse(server.name, p) ||
          c.store.q("SELECT 1 FROM intents WHERE server = ? AND remote_path = ?").get(
              server.name,
              p,
            ) !==
            undefined;
        if (inUse()) continue;
        const problem: Problem = {
          kind: "orphaned",
          remotePath: p,
          reason: "no synced file is recorded at this remote path",
        };
        if (repair) {
          try {
            await t.delete(p, { signal: c.signal });
            c.report.repaired.deleted++;
            problem.repaired = "deleted";
            if (inUse()) {
              // An upload announced it while we deleted: upload it again.
              const row = c.store.q(
                "SELECT input_file, dest FROM synced_files WHERE server = ? AND remote_path = ?",
              ).get(server.name, p) as { input_file: string; dest: string } | undefined;
              const src = row && sourceOf(config, row.input_file);
              if (row && src) queue(row, src);
            }
          } catch (e) {
            problem.repaired = `cannot delete: ${errorMessage(e)}`;
          }
        }
        sv.problems.push(problem);
      }
    }

    // 4. Public URLs.
    if (c.opts.httpHead) {
      const timeout = c.opts.headTimeoutMs ?? 10_000;
      const targets = c.rows.filter((r) => !pendingFor(r.input_file, r.dest) && r.url);
      sv.urls = targets.length;
      await pool(targets, c.opts.headConcurrency ?? 8, async (row) => {
        const why = await checkUrl(row.url, timeout);
        if (why) {
          sv.problems.push({
            kind: "unreachable",
            file: row.input_file,
            dest: row.dest,
            remotePath: row.remote_path,
            url: row.url,
            reason: `HEAD ${row.url}: ${why}`,
          });
        }
      });
    }
  } finally {
    await transport.close().catch(() => {});
  }
  return sv;
}

/**
 * Compares one record with its source file and the remote file; returns the
 * problem, if any (`gone`: the source file was deleted). Throws when the
 * server cannot be asked.
 */
async function checkRecord(
  config: Config,
  t: Transport,
  row: SyncedRow,
  source: Source | undefined,
  c: Ctx,
  skipRemote: () => boolean,
): Promise<{ problem: Problem; gone: boolean } | undefined> {
  const base = { file: row.input_file, dest: row.dest, remotePath: row.remote_path };
  const rel = source
    ? path.relative(source.scanPath, row.input_file).split(path.sep).join("/")
    : "";
  if (source && c.present.has(source.name)) {
    const sf = c.byPath.get(row.input_file);
    if (!sf) {
      // A rule that deletes sources after sync leaves records without sources on purpose.
      const deletesSources = matchingRules(config.rules, source, { path: row.input_file, rel })
        .some((r) => r.deletionDelay !== undefined);
      if (!deletesSources) {
        return {
          gone: true,
          problem: {
            kind: "stale",
            ...base,
            reason: "the source file was deleted but the remote copy is still recorded",
          },
        };
      }
    } else if (!sameFingerprint(row, sf.st)) {
      const failed = c.queued.get(key(row.input_file, row.server, row.dest));
      return {
        gone: false,
        problem: {
          kind: "stale",
          ...base,
          reason: failed?.state === "failed"
            ? `the source file changed and its sync failed: ${failed.last_error ?? "unknown error"}`
            : "the source file changed since it was synced",
        },
      };
    }
  }
  if (!isStater(t) || skipRemote()) return undefined;
  const st = await t.stat(row.remote_path, { signal: c.signal });
  if (!st) {
    return {
      gone: false,
      problem: { kind: "missing", ...base, reason: "the remote file does not exist" },
    };
  }
  const bad = sameChecksum(row, st);
  if (bad) return { gone: false, problem: { kind: "mismatch", ...base, reason: bad } };
  // The record keeps the source's size; it is the remote size only when no processor ran.
  if (source && row.size !== null && st.size !== row.size) {
    const unprocessed = matchingRules(config.rules, source, { path: row.input_file, rel }).some((
      r,
    ) =>
      r.processors.length === 0 &&
      r.destinations.some((d) => d.server === row.server && d.path === row.dest)
    );
    if (unprocessed) {
      return {
        gone: false,
        problem: {
          kind: "mismatch",
          ...base,
          reason: `the remote file has ${st.size} bytes, the synced file had ${row.size}`,
        },
      };
    }
  }
  for (const x of parseExtras(row.extras)) {
    if (!(await t.stat(x, { signal: c.signal }))) {
      return {
        gone: false,
        problem: {
          kind: "missing",
          ...base,
          remotePath: x,
          reason: "a precompressed variant is missing",
        },
      };
    }
  }
  return undefined;
}

/** Formats a report for people. */
export function formatVerify(r: VerifyReport, maxPerServer = 50): string {
  const lines: string[] = [];
  for (const s of r.servers) {
    const counts = KINDS.filter((k) => s.counts[k] > 0).map((k) => `${s.counts[k]} ${k}`);
    const caps = [s.capabilities.stat ? "" : "no stat", s.capabilities.list ? "" : "no listing"]
      .filter(Boolean);
    lines.push(
      `Server "${s.name}" (${s.transporter}): ${s.problems.length === 0 ? "OK" : "PROBLEMS"} — ` +
        `${s.records} records, ${s.ok} ok, ${s.pending} pending` +
        (s.capabilities.list ? `, ${s.remoteFiles} remote files listed` : "") +
        (s.urls ? `, ${s.urls} URLs checked` : "") +
        (counts.length ? `; ${counts.join(", ")}` : "") +
        (caps.length ? ` (transport has ${caps.join(", ")}: those checks were skipped)` : ""),
    );
    for (const p of s.problems.slice(0, maxPerServer)) {
      const what = p.file ?? p.remotePath ?? "";
      lines.push(
        `  ${p.kind.toUpperCase().padEnd(11)} ${what}${
          p.remotePath && p.file ? ` → ${p.remotePath}` : ""
        }: ${p.reason}${p.repaired ? ` [${p.repaired}]` : ""}`,
      );
    }
    if (s.problems.length > maxPerServer) {
      lines.push(`  … ${s.problems.length - maxPerServer} more (use --json for all)`);
    }
  }
  for (const w of r.warnings) lines.push(`Warning: ${w}`);
  if (r.repair) {
    lines.push(
      `Repair: ${r.repaired.queued} queued, ${r.repaired.deleted} orphans deleted` +
        (r.repaired.held ? `, ${r.repaired.held} deletions held by the delete guard` : "") +
        (r.repaired.queued > 0
          ? r.daemonRunning
            ? " (the running daemon picks up the queued work)"
            : ' (run "fileconveyor sync" to apply the queued work)'
          : ""),
    );
  }
  lines.push(
    r.ok
      ? `Verified in ${r.ms} ms: every destination matches.`
      : `Verified in ${r.ms} ms: differences found.`,
  );
  return redact(lines.join("\n"));
}
