/**
 * The live servers: per server its transport (created on first use), its
 * connection slots, its pause and its garbage-collection state.
 *
 * @module
 */
import * as path from "node:path";
import type { Server } from "../config/types.ts";
import { errorMessage } from "../errors.ts";
import { type Logger, logger } from "../log.ts";
import { getTransportDef, isFlusher, type Transport } from "../transports/transport.ts";
import { Semaphore } from "../util/semaphore.ts";
import type { PipelineContext } from "./context.ts";
import { Pacer } from "./retry.ts";

/** A live server: its transport and limits. */
export interface ServerState {
  server: Server;
  transport?: Promise<Transport>;
  /** Transfers at once: `maxConnections` times the transport's transfers per connection. */
  slots: Semaphore;
  /** Its `maxConnections` (or the default), for the transport. */
  connections: number;
  /** Jobs picked per free slot (the transport's `pickPerSlot`): the rest wait for a slot. */
  pickPerSlot: number;
  pacer: Pacer;
  running: number;
  log: Logger;
  /** Garbage collection of leftovers: done before the queue of the server runs. */
  gc: "todo" | "running" | "done";
  /**
   * Deletes completed on this server so far. An upload refused while a
   * delete ran (a file `x` that became a directory `x/`, deleted by another
   * job meanwhile) is tried again when this changed during its attempt.
   */
  deletes: number;
  /**
   * Set while files failed because this server refused them (an unwritable
   * folder, a full disk there): one of them is tried again now and then
   * ({@linkcode Worker.probeRefused}); the first success retries them all.
   */
  refused?: { job: number; probeAt: number; delayMs: number };
}

/** The servers of the configuration in effect, by name. */
export class Servers {
  readonly #ctx: PipelineContext;
  readonly #map = new Map<string, ServerState>();

  constructor(ctx: PipelineContext) {
    this.#ctx = ctx;
    for (const server of ctx.config.servers) this.add(server);
  }

  get(name: string): ServerState | undefined {
    return this.#map.get(name);
  }

  has(name: string): boolean {
    return this.#map.has(name);
  }

  values(): IterableIterator<ServerState> {
    return this.#map.values();
  }

  /** The server definitions in use, by name. */
  definitions(): Map<string, Server> {
    return new Map([...this.#map].map(([n, s]) => [n, s.server]));
  }

  /** Adds a live state for `server` (replacing none: call {@linkcode retire} first). */
  add(server: Server): void {
    if (this.#map.has(server.name)) return;
    const s = this.#ctx.config.settings;
    const max = server.maxConnections > 0 ? server.maxConnections : s.defaultMaxConnections;
    const def = getTransportDef(server.transporter);
    this.#map.set(server.name, {
      server,
      slots: new Semaphore(max * Math.max(1, def?.transfersPerConnection ?? 1)),
      connections: max,
      pickPerSlot: Math.max(1, def?.pickPerSlot ?? 1),
      pacer: new Pacer({ initialMs: s.retryInitialDelay * 1000, maxMs: s.retryMaxDelay * 1000 }),
      running: 0,
      log: logger(`${server.transporter}:${server.name}`),
      gc: "todo",
      deletes: 0,
    });
  }

  /** Removes a server's state; its transport closes once `drained` settles. */
  retire(name: string, drained: Promise<unknown>): void {
    const st = this.#map.get(name);
    if (!st) return;
    this.#map.delete(name);
    void drained.then(() => closeTransport(st));
  }

  /** The transport of a server, created on first use (again after a failed creation). */
  transport(s: ServerState): Promise<Transport> {
    if (!s.transport) {
      const def = getTransportDef(s.server.transporter)!;
      const ctx = this.#ctx;
      s.transport = def.create(s.server.settings, {
        serverName: s.server.name,
        log: s.log,
        maxConnections: s.connections,
        timeoutMs: ctx.config.settings.timeout * 1000,
        sourceRoots: ctx.config.sources.map((x) => x.scanPath),
        stateDir: path.join(ctx.dataDir, "servers", s.server.name.replace(/[^\w.-]/g, "_")),
      });
      s.transport.catch(() => {
        s.transport = undefined;
      });
    }
    return s.transport;
  }

  /** Completes deferred work of every transport (CDN invalidations). */
  async flush(): Promise<void> {
    for (const s of this.#map.values()) {
      if (!s.transport) continue;
      const t = await s.transport.catch(() => undefined);
      if (t && isFlusher(t)) {
        try {
          await t.flush({
            signal: AbortSignal.timeout(this.#ctx.config.settings.timeout * 1000),
          });
        } catch (e) {
          s.log.error(`Cannot flush pending work: ${errorMessage(e)}`);
        }
      }
    }
  }

  /** Closes every transport, all at once (a silent server does not hold the others). */
  async close(): Promise<void> {
    await Promise.all([...this.#map.values()].map(closeTransport));
  }
}

async function closeTransport(s: ServerState): Promise<void> {
  if (!s.transport) return;
  await (await s.transport.catch(() => undefined))?.close().catch(() => {});
}
