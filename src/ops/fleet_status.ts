/**
 * What `status` and `url` ask the fleet: every node (alive or gone, last
 * heartbeat, queue) and a file's URLs from the shared record. Each call
 * opens the shared store for one question and closes it; an unreachable
 * store is reported, never thrown, and its URL is shown without password.
 *
 * @module
 */
import { parseStoreUrl } from "../config/store_url.ts";
import type { Config } from "../config/types.ts";
import { errorMessage } from "../errors.ts";
import { redact } from "../log.ts";
import type { FleetRuntime } from "../pipeline/fleet.ts";
import { nodeName } from "../pipeline/fleet_keys.ts";
import { openSharedStore } from "../store/shared/open.ts";
import type { SharedStore } from "../store/shared/types.ts";
import type { Store } from "../store/store.ts";

/** The fleet part of the status report. */
export interface FleetStatus {
  /** This node's name. */
  node: string;
  /** The shared store's URL without its password. */
  store: string;
  /** What this node's daemon last saw (undefined when it never ran in fleet mode). */
  daemon?: FleetRuntime;
  /** Every node, newest heartbeat first; undefined when the shared store did not answer. */
  nodes?: {
    node: string;
    alive: boolean;
    startedAt: number;
    heartbeatAt: number;
    queued: number;
    failed: number;
    version: string;
  }[];
  /** Each node's view of each server, as the nodes last shared it; with `nodes`. */
  servers?: {
    server: string;
    node: string;
    failingSince: number | null;
    lastError: string | null;
    lastOk: number | null;
    updatedAt: number;
  }[];
  /** Why `nodes` is missing. */
  error?: string;
}

/** How long a one-off question may take. */
const ASK_TIMEOUT_MS = 5000;

/** The shared store's location, or undefined on a machine on its own. */
function location(config: Config): { url: string; redacted: string } | undefined {
  const loc = parseStoreUrl(config.settings.store);
  return typeof loc === "string" || loc.kind === "local" ? undefined : loc;
}

/** Runs `fn` on a freshly opened shared store, within {@linkcode ASK_TIMEOUT_MS}. */
async function ask<T>(config: Config, fn: (s: SharedStore) => Promise<T>): Promise<T> {
  const loc = location(config)!;
  const node = nodeName(config.settings.node);
  let timer = 0;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no answer within ${ASK_TIMEOUT_MS / 1000} s`)),
      ASK_TIMEOUT_MS,
    ) as unknown as number;
  });
  const work = (async () => {
    const s = await openSharedStore(loc.url, node);
    try {
      return await fn(s);
    } finally {
      await s.close().catch(() => {});
    }
  })();
  try {
    return await Promise.race([work, late]);
  } catch (e) {
    throw new Error(
      `The shared store ${loc.redacted} is unreachable: ${
        errorMessage(e).split(loc.url).join(loc.redacted)
      }`,
    );
  } finally {
    clearTimeout(timer);
  }
}

/** The fleet status, or undefined on a machine on its own. */
export async function fleetStatus(config: Config, store: Store): Promise<FleetStatus | undefined> {
  const loc = location(config);
  if (!loc) return undefined;
  const daemon = store.getRuntime<FleetRuntime>("fleet");
  const out: FleetStatus = {
    node: nodeName(config.settings.node),
    store: loc.redacted,
    ...(daemon ? { daemon } : {}),
  };
  try {
    const [rows, health] = await ask(config, (s) => Promise.all([s.nodes(), s.serverHealth()]));
    const now = Date.now();
    const timeout = config.settings.nodeTimeout * 1000;
    out.nodes = rows.map((r) => ({
      node: r.node,
      alive: now - r.heartbeat_at < timeout,
      startedAt: r.started_at,
      heartbeatAt: r.heartbeat_at,
      queued: r.queued,
      failed: r.failed,
      version: r.version,
    }));
    out.servers = health.map((h) => ({
      server: h.server,
      node: h.node,
      failingSince: h.failing_since,
      lastError: h.last_error === null ? null : redact(h.last_error),
      lastOk: h.last_ok,
      updatedAt: h.updated_at,
    }));
  } catch (e) {
    out.error = errorMessage(e);
  }
  return out;
}

/**
 * The URLs of `inputFile` in the shared record, one per configured server
 * that has it; undefined on a machine on its own. Throws when the shared
 * store does not answer.
 */
export async function fleetUrls(
  config: Config,
  inputFile: string,
  server?: string,
): Promise<{ server: string; url: string }[] | undefined> {
  if (!location(config)) return undefined;
  const servers = config.servers.map((s) => s.name).filter((n) => !server || n === server);
  return await ask(config, async (s) => {
    const out: { server: string; url: string }[] = [];
    for (const name of servers) {
      const url = await s.urlFor(inputFile, name);
      if (url !== undefined) out.push({ server: name, url });
    }
    return out;
  });
}
