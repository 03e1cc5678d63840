/**
 * Jobs picked ahead of free slots. Where a pick costs about as much as the
 * job itself (a local destination: small copies), the scheduler picks
 * several jobs per slot (`pickPerSlot`, see {@linkcode PickedAhead.want}),
 * so one commit picks and records many. The jobs beyond the free slots are
 * held here, in memory, marked running and claimed in the store by their
 * pick's commit, until a slot of their server is free: a slot given back
 * starts the next one at once, without a pick of its own.
 *
 * Contract: a held job either starts, in the free slots of its server (and
 * overall) while the run goes on, the server is not paused and is still the
 * configured one, or goes back to the queue, un-marked and with what its
 * pick claimed undone: when its server pauses, a reload removes the server,
 * or the run stops. While a server holds jobs here it picks no others
 * ({@linkcode PickedAhead.holds}). Putting back throws when the database
 * cannot be written; the jobs then stay held until it can.
 *
 * @module
 */
import type { Job } from "../store/store.ts";
import type { Semaphore } from "../util/semaphore.ts";
import type { PipelineContext } from "./context.ts";
import type { Servers, ServerState } from "./servers.ts";

/** What the held jobs need of the scheduler. */
export interface PickedAheadDeps {
  /** The slots shared by all servers. */
  globalSlots: Semaphore;
  /** Takes the slots of `s` (a free one is there) and starts `job` in them. */
  start(s: ServerState, job: Job): void;
  /** In the transaction that puts `jobs` back: undoes what their pick claimed. */
  unclaim(s: ServerState, jobs: readonly Job[]): void;
}

/** Jobs picked ahead of free slots, per server, in pick order. */
export class PickedAhead {
  readonly #ctx: PipelineContext;
  readonly #servers: Servers;
  readonly #d: PickedAheadDeps;
  readonly #held = new Map<ServerState, Job[]>();

  constructor(ctx: PipelineContext, servers: Servers, deps: PickedAheadDeps) {
    this.#ctx = ctx;
    this.#servers = servers;
    this.#d = deps;
  }

  /**
   * Jobs to pick for `s` with `free` slots free: more than that where picking
   * ahead pays. A fleet node too: it picks the jobs whose files it claimed
   * ahead first, so their records share commits as on one node (up to its
   * bound on unpublished records, `fleet.ts`).
   */
  want(s: ServerState, free: number): number {
    if (s.pickPerSlot <= 1) return free;
    return Math.max(free, s.pickPerSlot * (s.slots.free + s.running) - s.running);
  }

  /** Holds `job` (picked for `s`, marked running, committed) until a slot of `s` is free. */
  add(s: ServerState, job: Job): void {
    const list = this.#held.get(s);
    if (list) list.push(job);
    else this.#held.set(s, [job]);
  }

  /** Whether jobs of `s` are held: `s` picks no more until they started. */
  holds(s: ServerState): boolean {
    return this.#held.has(s);
  }

  /** Starts jobs held for `s` in its free slots, unless the run stops or `s` pauses. */
  start(s: ServerState): void {
    const list = this.#held.get(s);
    if (!list) return;
    const ctx = this.#ctx;
    if (ctx.signal.aborted || ctx.stopping || s.pacer.blocked(Date.now())) return;
    if (this.#servers.get(s.server.name) !== s) return;
    while (list.length > 0 && s.slots.free > 0 && this.#d.globalSlots.free > 0) {
      this.#d.start(s, list.shift()!);
    }
    if (list.length === 0) this.#held.delete(s);
  }

  /**
   * Puts jobs held back in the queue where they cannot start soon: their
   * server paused or left the configuration, or the run stops.
   */
  dropStale(now: number): void {
    const stopping = this.#ctx.signal.aborted || this.#ctx.stopping;
    for (const [s, list] of this.#held) {
      if (!stopping && !s.pacer.blocked(now) && this.#servers.get(s.server.name) === s) continue;
      this.#putBack(s, list);
      this.#held.delete(s);
    }
  }

  /**
   * Puts every job held back in the queue (at shutdown). Not written (the
   * database fails): the next start resets the marks and drops the claims.
   */
  putBackAll(): void {
    for (const [s, list] of this.#held) this.#putBack(s, list);
    this.#held.clear();
  }

  /**
   * Un-marks and unclaims jobs that were picked and will not start; throws
   * when the database cannot be written (the jobs stay held until it can).
   */
  #putBack(s: ServerState, jobs: readonly Job[]) {
    const store = this.#ctx.store;
    store.tx(() => {
      for (const job of jobs) store.requeue(job, job.ready_at, undefined, false);
      this.#d.unclaim(s, jobs);
    });
  }
}
