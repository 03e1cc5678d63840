/**
 * Verify of one server: opens its transport, runs the steps (records,
 * source files, orphans, public URLs) and closes it. Never throws for a
 * server problem: each is reported.
 *
 * @module
 */
import type { Server } from "../config/types.ts";
import { errorMessage } from "../errors.ts";
import { logger } from "../log.ts";
import type { SyncedRow } from "../store/store.ts";
import { createTransport, maxConnectionsOf } from "../transports/factory.ts";
import { isLister, isStater, type Transport } from "../transports/transport.ts";
import { mapLimit } from "../util/pool.ts";
import { pendingJob, type RunContext, type ServerContext } from "./_context.ts";
import { checkUrl } from "./check_url.ts";
import { checkOrphans } from "./orphans.ts";
import { checkRecords } from "./records.ts";
import { checkSources } from "./sources.ts";
import { PROBLEM_KINDS, type ProblemKind, type ServerVerify } from "./report.ts";

/** Checks one server against the run's snapshot (`rows`, `intents`: this server's). */
export async function verifyServer(
  run: RunContext,
  server: Server,
  snapshot: { rows: SyncedRow[]; intents: Set<string> },
): Promise<ServerVerify> {
  const sv: ServerVerify = {
    name: server.name,
    transporter: server.transporter,
    capabilities: { stat: false, list: false },
    records: snapshot.rows.length,
    sourceFiles: 0,
    remoteFiles: 0,
    urls: 0,
    ok: 0,
    pending: 0,
    counts: Object.fromEntries(PROBLEM_KINDS.map((k) => [k, 0])) as Record<ProblemKind, number>,
    problems: [],
  };
  const max = maxConnectionsOf(run.config, server);
  let transport: Transport;
  try {
    transport = await createTransport(run.config, server, {
      dataDir: run.dataDir,
      log: logger(`verify:${server.name}`),
      maxConnections: max,
    });
  } catch (e) {
    sv.problems.push({
      kind: "error",
      reason: `Cannot open server "${server.name}": ${errorMessage(e)}`,
    });
    return sv;
  }
  const c: ServerContext = {
    ...run,
    server,
    transport,
    sv,
    rows: snapshot.rows,
    intents: snapshot.intents,
    limit: run.opts.concurrency ?? Math.min(16, max),
  };
  try {
    sv.capabilities = { stat: isStater(transport), list: isLister(transport) };
    await checkRecords(c);
    const expected = checkSources(c);
    await checkOrphans(c, expected);
    if (run.opts.httpHead) await checkUrls(c);
  } finally {
    await transport.close().catch(() => {});
  }
  return sv;
}

/** Verify, step 4: every recorded public URL answers 2xx to HEAD. */
async function checkUrls(c: ServerContext): Promise<void> {
  const timeout = c.opts.headTimeoutMs ?? 10_000;
  const targets = c.rows.filter((r) => !pendingJob(c, r.input_file, r.dest) && r.url);
  c.sv.urls = targets.length;
  await mapLimit(targets, c.opts.headConcurrency ?? 8, async (row) => {
    const why = await checkUrl(row.url, timeout);
    if (why) {
      c.sv.problems.push({
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
