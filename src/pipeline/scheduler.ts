/**
 * Scheduling: which jobs start when. Slots per server and overall, the
 * pump that picks ready jobs, the wake-up timer for the next ready job,
 * idle detection, and the record stage (many small writes of one tick share
 * one transaction, and the next pick joins it: see `group_commit.ts`). Jobs
 * picked beyond the free slots wait in `picked_ahead.ts`; trouble writing the
 * database is handled by `write_trouble.ts`.
 *
 * @module
 */
import { setImmediate } from "node:timers";
import { errorMessage } from "../errors.ts";
import { type Job, NEVER } from "../store/store.ts";
import { Semaphore } from "../util/semaphore.ts";
import type { PipelineContext } from "./context.ts";
import { type BatchItem, commitTogether } from "./group_commit.ts";
import { PickedAhead } from "./picked_ahead.ts";
import type { Servers, ServerState } from "./servers.ts";
import { WriteTrouble } from "./write_trouble.ts";

/** What the scheduler calls back into. */
export interface SchedulerHooks {
  /**
   * Runs one job (its slots are taken; the scheduler releases them when it
   * ends). `release` gives them back earlier: a job that only waits for its
   * outcome to be committed calls it, so the job picked in that same commit
   * can take its slot.
   */
  runJob(s: ServerState, job: Job, release: () => void): Promise<void>;
  /**
   * Called inside the transaction that picks `jobs` (before they start):
   * writes what must be committed before they start, in the pick's commit.
   */
  claim(s: ServerState, jobs: readonly Job[]): void;
  /**
   * Called inside a transaction for picked jobs that will not start (picked
   * ahead, then the server paused, left the configuration or the run
   * stops): undoes what {@linkcode SchedulerHooks.claim} wrote.
   */
  unclaim(s: ServerState, jobs: readonly Job[]): void;
  /** Removes a server's leftovers before its queue runs; resolves when done. */
  collectGarbage(s: ServerState): Promise<void>;
  /** The database became writable again after trouble: scans lost meanwhile must rerun. */
  recovered(): void;
  /** The state database is damaged or gone: the run must end with this error. */
  fatal(e: Error): void;
  /**
   * Jobs of `server` to start before any other (a fleet node: those whose
   * files are claimed already); `wait`: start no other job now, more such
   * jobs come soon (the hook's owner pumps then).
   */
  preferred?(server: string, limit: number): { ids: number[]; wait: boolean };
}

/** Jobs picked in a record transaction, to start once it is committed. */
interface Picked {
  /** When they were picked (jobs ready later were not offered). */
  at: number;
  jobs: [ServerState, Job][];
  /** Per server, how many of its jobs (the first ones) took slots; the rest wait ahead. */
  slots: Map<ServerState, number>;
  /** Servers that had fewer ready jobs than free slots. */
  drained: Set<ServerState>;
}

/** Starts jobs within the limits; records their outcomes in shared transactions. */
export class Scheduler {
  readonly #ctx: PipelineContext;
  readonly #servers: Servers;
  readonly #hooks: SchedulerHooks;
  readonly #globalSlots: Semaphore;
  /** Work in flight: jobs and garbage collections. */
  readonly running = new Set<Promise<void>>();
  #wake: number | undefined;
  #wakeAt = Infinity;
  #pumping = false;
  #pumpAgain = false;
  #pumpScheduled = false;
  #idle: { resolve: () => void; promise: Promise<void> } | undefined;
  readonly #pendingBatch: BatchItem[] = [];
  #batchScheduled = false;
  /** Jobs that ended while the database could not record it. */
  readonly #unsettled: Job[] = [];
  readonly #ahead: PickedAhead;
  readonly #trouble: WriteTrouble;

  constructor(ctx: PipelineContext, servers: Servers, hooks: SchedulerHooks) {
    this.#ctx = ctx;
    this.#servers = servers;
    this.#hooks = hooks;
    const s = ctx.config.settings;
    this.#globalSlots = new Semaphore(
      Math.min(s.maxSimultaneousTransporters, s.maxFilesInPipeline),
    );
    this.#ahead = new PickedAhead(ctx, servers, {
      globalSlots: this.#globalSlots,
      start: (s, job) => {
        this.#takeSlots(s);
        this.#startJob(s, job);
      },
      unclaim: (s, jobs) => hooks.unclaim(s, jobs),
    });
    this.#trouble = new WriteTrouble(ctx, {
      retry: () => this.pump(),
      recovered: () => hooks.recovered(),
      fatal: (e) => hooks.fatal(e),
    });
  }

  /**
   * Starts every job that may run now; arms a timer for the next one.
   * `picked`: jobs already picked (and their slots taken) in the record
   * transaction; servers that had no more ready jobs are not asked again.
   */
  pump(picked?: Picked): void {
    const ctx = this.#ctx;
    if (ctx.options.dryRun || ctx.signal.aborted) {
      if (picked) this.#unpick(picked);
      return;
    }
    if (this.#pumping) {
      if (picked) this.#unpick(picked);
      this.#pumpAgain = true;
      return;
    }
    this.#pumping = true;
    try {
      // The first `free` jobs of each server took slots when picked; the rest wait ahead.
      const started = new Map<ServerState, number>();
      for (const [s, job] of picked?.jobs ?? []) {
        const n = started.get(s) ?? 0;
        if (n < (picked!.slots.get(s) ?? 0)) {
          started.set(s, n + 1);
          this.#startJob(s, job);
        } else this.#ahead.add(s, job);
      }
      // Jobs whose outcome could not be recorded (disk full) go back to the queue first.
      while (this.#unsettled.length > 0) {
        ctx.store.requeue(this.#unsettled[0]!, Date.now() + 2000, undefined, false);
        this.#unsettled.shift();
      }
      let skip = picked?.drained;
      // Jobs ready by then were offered to every server that could take one.
      let considered = picked?.at ?? Infinity;
      do {
        this.#pumpAgain = false;
        const now = Date.now();
        considered = Math.min(considered, now);
        this.#ahead.dropStale(now);
        for (const s of this.#servers.values()) {
          if (s.pacer.blocked(now) || skip?.has(s)) continue;
          if (s.gc !== "done") {
            this.#startGc(s);
            continue;
          }
          this.#ahead.start(s);
          const free = Math.min(s.slots.free, this.#globalSlots.free);
          if (free <= 0 || this.#ahead.holds(s)) continue;
          const want = this.#ahead.want(s, free);
          const preferred = this.#preferred(s, want);
          // Nothing may start before the answers on their way: no transaction to pick nothing.
          if (preferred?.wait && preferred.ids.length === 0) continue;
          const jobs = ctx.store.tx(() => {
            const jobs = this.#pick(s, want, now, preferred);
            this.#hooks.claim(s, jobs);
            return jobs;
          });
          for (const job of jobs.splice(free)) this.#ahead.add(s, job);
          for (const job of jobs) {
            this.#takeSlots(s);
            this.#startJob(s, job);
          }
        }
        skip = undefined;
      } while (this.#pumpAgain);
      this.#armWake(considered);
      this.#checkIdle();
      this.#trouble.check();
    } catch (e) {
      this.storeTrouble(e);
    } finally {
      this.#pumping = false;
    }
  }

  /**
   * Pumps with the record transaction of this tick (its pick shares that
   * commit), or on its own in the next tick when nothing is to be recorded:
   * for what makes jobs ready while others record (a fleet node's claims
   * answered), so their start costs no commit of its own.
   */
  pumpSoon(): void {
    this.#schedulePump();
  }

  /** Whether the database could not be written and no write has landed since. */
  get troubled(): boolean {
    return this.#trouble.troubled;
  }

  /** Puts a job whose outcome could not be recorded back once the database can be written. */
  unsettled(job: Job): void {
    this.#unsettled.push(job);
  }

  /** The database cannot be written: see {@linkcode WriteTrouble.report}. */
  storeTrouble(e: unknown): void {
    this.#trouble.report(e);
  }

  #startGc(s: ServerState) {
    if (s.gc !== "todo") return;
    s.gc = "running";
    const p = this.#hooks.collectGarbage(s).then(
      () => {
        s.gc = "done";
      },
      (e) => {
        // Leftovers are retried at the next start; they never block syncing.
        s.log.warn(`Cannot remove leftovers yet: ${errorMessage(e)}`);
        s.gc = "done";
      },
    ).finally(() => {
      this.running.delete(p);
      this.pump();
    });
    this.running.add(p);
  }

  #takeSlots(s: ServerState) {
    s.slots.tryAcquire();
    this.#globalSlots.tryAcquire();
    s.running++;
  }

  #startJob(s: ServerState, job: Job) {
    let held = true;
    const release = () => {
      if (!held) return;
      held = false;
      s.running--;
      s.slots.release();
      this.#globalSlots.release();
      this.#ahead.start(s);
      this.#schedulePump();
    };
    // A job stays in `running` until its outcome is committed, also after its slots went back:
    // idle detection and shutdown wait for it.
    const p = this.#hooks.runJob(s, job, release).finally(() => {
      release();
      this.running.delete(p);
      this.#schedulePump();
    });
    this.running.add(p);
  }

  /**
   * Picks ready jobs for every server with free slots and takes their slots,
   * without starting them: called inside the record transaction, so the pick
   * shares its commit; the jobs start once it is committed.
   */
  #pickInto(picked: Picked) {
    const now = Date.now();
    picked.at = now;
    for (const s of this.#servers.values()) {
      if (s.pacer.blocked(now) || s.gc !== "done" || this.#ahead.holds(s)) continue;
      const free = Math.min(s.slots.free, this.#globalSlots.free);
      if (free <= 0) continue;
      const want = this.#ahead.want(s, free);
      const jobs = this.#pick(s, want, now, this.#preferred(s, want));
      this.#hooks.claim(s, jobs);
      for (const [i, job] of jobs.entries()) {
        if (i < free) this.#takeSlots(s);
        picked.jobs.push([s, job]);
      }
      picked.slots.set(s, Math.min(free, jobs.length));
      if (jobs.length < want) picked.drained.add(s);
    }
  }

  /** The jobs of `s` to start first ({@linkcode SchedulerHooks.preferred}), when there is a hook. */
  #preferred(s: ServerState, free: number): { ids: number[]; wait: boolean } | undefined {
    return this.#hooks.preferred?.(s.server.name, free);
  }

  /**
   * Up to `free` ready jobs of `s`, marked running: the `preferred` ones
   * first (asked of the hook just before, for the same `free`).
   */
  #pick(
    s: ServerState,
    free: number,
    now: number,
    preferred: { ids: number[]; wait: boolean } | undefined,
  ): Job[] {
    const store = this.#ctx.store;
    if (!preferred) return store.pick(s.server.name, free, now);
    const jobs = store.pickIds(preferred.ids, now);
    if (jobs.length < free && !preferred.wait) {
      jobs.push(...store.pick(s.server.name, free - jobs.length, now));
    }
    return jobs;
  }

  /** Gives back the slots of picked jobs that will not start (their pick was rolled back). */
  #unpick(picked: Picked) {
    for (const [s, n] of picked.slots) {
      for (let i = 0; i < n; i++) {
        s.running--;
        s.slots.release();
        this.#globalSlots.release();
      }
    }
    picked.jobs = [];
    picked.slots.clear();
    picked.drained.clear();
  }

  /**
   * Coalesces the pumps of many finishing jobs into one (one pick per tick,
   * not per job), run with the tick's record transaction.
   */
  #schedulePump() {
    if (this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    this.#scheduleFlush();
  }

  /**
   * Arms the timer for the next job to become ready after `considered` (the
   * pick time): a job ready by then that was not picked waits for a slot
   * (a job that gives its slot back pumps again), the end of its server's
   * pause (timed here too) or its server's clean-up (which pumps when done),
   * so a busy queue does not wake the pump every few milliseconds.
   */
  #armWake(considered: number) {
    const now = Date.now();
    let next = this.#ctx.store.nextReadyAt(considered) ?? Infinity;
    for (const s of this.#servers.values()) {
      const until = s.pacer.blockedUntil;
      if (until > now) next = Math.min(next, until);
    }
    if (next === Infinity || next >= NEVER) return;
    const at = Math.max(next, now + 5);
    if (this.#wake !== undefined && this.#wakeAt <= at) return;
    if (this.#wake !== undefined) clearTimeout(this.#wake);
    this.#wakeAt = at;
    this.#wake = setTimeout(() => {
      this.#wake = undefined;
      this.#wakeAt = Infinity;
      this.pump();
    }, at - now) as unknown as number;
  }

  #checkIdle() {
    if (!this.#idle || this.running.size > 0) return;
    if (this.#ctx.store.hasActive()) return;
    this.#idle.resolve();
  }

  /** Resolves when the queue is empty and nothing runs. */
  untilIdle(): Promise<void> {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    this.#idle = { resolve, promise };
    this.pump();
    this.#checkIdle();
    return promise;
  }

  /** Stops the timers (at shutdown, before running work drains). */
  stopTimers(): void {
    this.#trouble.stopTimer();
    if (this.#wake !== undefined) clearTimeout(this.#wake);
  }

  /** Commits the writes still waiting (at shutdown, after running work drained). */
  flush(): void {
    this.#flushBatch();
    this.#ahead.putBackAll();
  }

  // ---- record stage: many small writes share one transaction ----

  /**
   * Runs `fn` in a transaction shared with the other writes of this tick
   * (each in its own savepoint, so one failure stays alone). Resolves once
   * committed. A crash before the commit loses only the record of work that
   * is then redone, never the work queue.
   */
  batch<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#pendingBatch.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      this.#scheduleFlush();
    });
  }

  #scheduleFlush() {
    if (!this.#batchScheduled) {
      this.#batchScheduled = true;
      setImmediate(() => this.#flushBatch());
    }
  }

  #flushBatch() {
    this.#batchScheduled = false;
    const pump = this.#pumpScheduled;
    this.#pumpScheduled = false;
    const items = this.#pendingBatch.splice(0);
    if (items.length === 0) {
      if (pump) this.pump();
      return;
    }
    // The pump's pick joins this transaction (one commit, not two) unless a pump is running.
    const picked: Picked | undefined =
      pump && !this.#pumping && !this.#ctx.options.dryRun && !this.#ctx.signal.aborted
        ? { at: Date.now(), jobs: [], slots: new Map(), drained: new Set() }
        : undefined;
    try {
      commitTogether(
        this.#ctx.store,
        items,
        picked && {
          run: () => this.#pickInto(picked),
          // A failing pick undoes every pick, never the records; the pump picks on its own
          // (and reports a database problem).
          undo: () => this.#unpick(picked),
        },
      );
    } finally {
      if (pump) this.pump(picked);
    }
  }
}
