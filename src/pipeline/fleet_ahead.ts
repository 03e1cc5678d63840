/**
 * Claims made ahead of the jobs that need them. When a node of a fleet
 * claims files, it also claims the files of the next ready jobs of the same
 * server (as the local queue would hand them out) in the same round trip,
 * and claims again while a pick's worth of answers is left ({@linkcode
 * claimMore}): a job that starts finds its answer waiting, so upload slots
 * do not wait on the shared store, and the scheduler picks the answered
 * jobs in the transaction that records the jobs before them.
 *
 * Contract:
 * - an answer serves only a job whose file still has the fingerprint it was
 *   claimed with; "mine" only while at least half of the lease is left,
 *   "busy" only while fresh, "done" only while younger than half a lease;
 *   otherwise the job claims on demand (its own lease is simply renewed);
 * - an answer is used at most once: {@linkcode ClaimAhead.take} removes it;
 * - a file another node uploaded, whose record this node's mirror of the
 *   shared record holds and vouches for as the file is now (same stat, not
 *   racy: `vouchedMd5`), is not asked about: its answer is "done" with that
 *   record, as the claim would say, without a round trip;
 * - a file whose MD5 is not known is not read to be claimed: it is claimed
 *   with its stat (`unreadFingerprint`, `statAsk`); a "done" answer to it
 *   gives the MD5 the record vouches for (`vouchedMd5`), and the entry then
 *   serves a job that knows that MD5 as it would have served the stat; a
 *   "mine" answer with a record of the same size and mtime (`mayBeCopy`)
 *   makes the file read then: of the record's content, the answer is "done"
 *   with it and the caller releases the lease (`AheadBatch.settle`), so the
 *   job settles or adopts as for any "done" answer;
 * - a "mine" answer no job takes (the job was skipped or cancelled, or still
 *   waits) is given back to the caller to release: when its job ends without
 *   it ({@linkcode ClaimAhead.unused}) or when half the lease is gone
 *   ({@linkcode ClaimAhead.sweep}); other nodes never wait on an unused lease
 *   for long;
 * - a "busy" answer makes that job wait while the next jobs go on, so nodes
 *   sharing one folder end up claiming disjoint batches; after a batch of
 *   mostly "done" or "busy" answers the look jumps ahead, and the next batch
 *   is larger (up to {@linkcode AHEAD_BATCH_MAX}).
 *
 * @module
 */
import { keyId } from "../store/shared/_keys.ts";
import type { Claim, ClaimItem, SharedKey, SharedRecord, StatAsk } from "../store/shared/types.ts";
import type { Job } from "../store/store.ts";
import { fingerprint, mayBeCopy, vouchedMd5 } from "./fleet_keys.ts";
import type { Fingerprint } from "./plan.ts";

/** Files claimed ahead per round trip and server. */
export const AHEAD_BATCH = 64;

/**
 * Most files claimed ahead per round trip and server: after a batch whose
 * answers were mostly "done" or "busy" (another node works there), the next
 * one is twice as large, up to this; one mostly "mine" brings it back to
 * {@linkcode AHEAD_BATCH}. What another node did costs this one a look and
 * no job (`fleet_settle.ts`), so its round trips set the pace there.
 */
export const AHEAD_BATCH_MAX = 256;

/** Fewer answers than this left for a server, besides one pick's worth: claim the next batch. */
export const AHEAD_LOW = 24;

/**
 * Whether to claim the next batch for a server that has `left` answers not
 * yet handed out, when the scheduler takes up to `pick` of them at once:
 * while fewer than one pick and {@linkcode AHEAD_LOW} more are left. The
 * next answers then come while the jobs handed out run, so the next pick
 * finds them in the transaction that records those jobs: no slot waits for
 * a round trip, and no pick needs a transaction of its own.
 */
export function claimMore(left: number, pick: number): boolean {
  return left < AHEAD_LOW + pick;
}

/** Queued jobs read beyond those still wanted, for the ones a look skips (deletes, big files). */
const PEEK_SPARE = 16;

/** A "busy" answer older than this is asked again: its holder may have published by now. */
export const BUSY_FRESH_MS = 150;

/** Longest wait before asking again about a file another node is uploading. */
const BUSY_WAIT_MAX_MS = 2000;

/**
 * First wait before asking again about a file another node holds; it
 * doubles with each wait. Nodes claim small files ahead in batches and
 * upload them within moments, so most waits end at the first question.
 */
const BUSY_WAIT_FIRST_MS = 150;

/**
 * How long a job waits before asking again about a file another node holds
 * until `until`, after `requeues` waits.
 */
export function busyWait(until: number, now: number, requeues: number): number {
  const first = BUSY_WAIT_FIRST_MS * 2 ** Math.min(requeues, 10);
  return Math.min(Math.max(until - now, 100), BUSY_WAIT_MAX_MS, first);
}

/** A file of a job, as claimed ahead: what the job compares, and the MD5 it may reuse. */
export interface AheadFile {
  key: SharedKey;
  fingerprint: string;
  /** The content's MD5; undefined when the file was not read (claimed with `statAsk`). */
  md5?: string | undefined;
  /** The stat the claim asks with when the MD5 is not known. */
  statAsk?: StatAsk | undefined;
  stat: Fingerprint;
  /**
   * Another node's record of the file with this fingerprint, known without
   * asking (this node's mirror of the shared record vouches for the file as
   * it is): the answer is "done" with it, and the file is not claimed.
   */
  known?: SharedRecord;
}

/** One answer kept for a job. */
export interface AheadEntry extends AheadFile {
  /** The queued job it was claimed for. */
  job: Job;
  /** The answer; undefined while the claim is in flight. */
  claim?: Claim;
  /** When the answer came (ms). */
  at: number;
  /** Handed to the scheduler to run (see {@linkcode ClaimAhead.ready}). */
  handed?: boolean;
  /** Settles with the answer (rejects when the shared store failed). */
  answer: Promise<Claim>;
}

/**
 * A file claimed with its stat and answered "done": the MD5 the record
 * vouches for, and the fingerprint of that content (the answer serves the
 * job that knows it). A record whose fingerprint names no MD5 leaves the
 * entry unread: its job reads the file.
 */
function withVouchedMd5(e: AheadFile & { job: Job }, record: SharedRecord): void {
  const md5 = vouchedMd5(record, e.stat, e.job.force);
  if (md5 === undefined) return;
  e.md5 = md5;
  e.fingerprint = fingerprint(e.stat.size, e.stat.mtimeMs, md5);
}

/** What a job does with the answer kept for its file. */
export type AheadUse = "use" | "wait" | "claim";

/** Whether an answer is too old to serve a job (undefined answers are in flight, not old). */
export function aheadExpired(
  e: { claim?: Claim | undefined; at: number },
  now: number,
  leaseMs: number,
): boolean {
  const c = e.claim;
  if (!c) return false;
  switch (c.kind) {
    case "mine":
      return c.until - now < leaseMs / 2;
    case "busy":
      return now - e.at > BUSY_FRESH_MS;
    case "done":
      return now - e.at > leaseMs / 2;
  }
}

/**
 * The decision for a job whose file has fingerprint `fp` now: use the kept
 * answer, wait for the claim in flight, or claim on demand.
 */
export function useAhead(
  e: { fingerprint: string; claim?: Claim | undefined; at: number },
  fp: string,
  now: number,
  leaseMs: number,
): AheadUse {
  if (e.fingerprint !== fp) return "claim";
  if (!e.claim) return "wait";
  return aheadExpired(e, now, leaseMs) ? "claim" : "use";
}

/**
 * Whether the answers of a batch say that another node works in the same
 * part of the queue: most of them "done" (it passed here) or "busy" (it is
 * here).
 */
export function shouldJump(claims: readonly Claim[]): boolean {
  const mine = claims.filter((c) => c.kind === "mine").length;
  return claims.length > 0 && mine * 2 < claims.length;
}

/** A batch of files to claim ahead, and how to hand the answers out. */
export interface AheadBatch {
  /** The files to claim: the entries whose answer is not known already. */
  items: ClaimItem[];
  /** Every entry planned, in order (the known ones too). */
  entries: AheadEntry[];
  /**
   * Keeps the answers (one per item, in order); the known ones are "done"
   * with their record. Returns the entries whose "mine" answer became
   * "done" (read, and of the record's content): release their leases.
   */
  settle(claims: readonly Claim[], now: number): AheadEntry[];
  /** The claim failed: the entries go (their jobs claim on demand). */
  fail(e: unknown): void;
}

/** What {@linkcode ClaimAhead} needs of the node. */
export interface AheadDeps {
  /** Ready jobs of `server` that are not running, after job id `afterId`, by id. */
  peek(server: string, limit: number, afterId: number): Job[];
  /** The highest job id of the queue. */
  lastJobId(): number;
  /**
   * The file of each job (in order) as it would be claimed; undefined to
   * leave that job to claim itself.
   */
  filesOf(jobs: readonly Job[]): (AheadFile | undefined)[];
  /**
   * The MD5 of a file claimed unread, read now; undefined when it cannot be
   * read (its job reads it). Absent: never read here.
   */
  read?(file: AheadFile): string | undefined;
}

/** The answers kept for jobs that have not asked yet. */
export class ClaimAhead {
  readonly #deps: AheadDeps;
  readonly #entries = new Map<string, AheadEntry>();
  /** Per server: its entries not yet handed out (what {@linkcode count} answers, kept up to date). */
  readonly #unhanded = new Map<string, number>();
  /** Per server: the last job id looked at; the next look goes on after it. */
  readonly #cursor = new Map<string, number>();
  /** Per server: the size of the next batch, when not {@linkcode AHEAD_BATCH}. */
  readonly #size = new Map<string, number>();
  readonly #random: () => number;

  constructor(deps: AheadDeps, random: () => number = Math.random) {
    this.#random = random;
    this.#deps = deps;
  }

  /** Answers kept (or in flight) for `server`'s jobs, not yet handed to the scheduler. */
  count(server: string): number {
    return this.#unhanded.get(server) ?? 0;
  }

  /**
   * Up to `limit` jobs of `server` whose answer is in and lets them go on
   * ("mine" or "done"), marked as handed out; `wait`: claims are in flight,
   * so more answers come soon.
   */
  ready(server: string, limit: number, now: number, leaseMs: number): {
    ids: number[];
    wait: boolean;
  } {
    const ids: number[] = [];
    let wait = false;
    for (const e of this.#entries.values()) {
      if (e.key.server !== server || e.handed) continue;
      if (!e.claim) {
        wait = true;
        continue;
      }
      if (ids.length >= limit || e.claim.kind === "busy" || aheadExpired(e, now, leaseMs)) continue;
      e.handed = true;
      this.#counted(e, -1);
      ids.push(e.job.id);
    }
    return { ids, wait };
  }

  /**
   * The next jobs of `server` that have no answer kept and are not in
   * `exclude` (key ids): their entries are created now (in flight), so a
   * job that asks before the answer comes waits for it.
   */
  plan(server: string, exclude: ReadonlySet<string>): AheadBatch {
    const planned: {
      id: string;
      entry: AheadEntry;
      resolve: (c: Claim) => void;
      reject: (e: unknown) => void;
    }[] = [];
    let after = this.#cursor.get(server) ?? 0;
    let wrapped = after === 0;
    const size = this.#size.get(server) ?? AHEAD_BATCH;
    // A few pages at most: jobs that are skipped (deletes, big files, answered) cost a look.
    for (let page = 0; page < 4 && planned.length < size; page++) {
      // What is still wanted and a few more: each row read costs (the next look reads the rest).
      const jobs = this.#deps.peek(server, size - planned.length + PEEK_SPARE, after);
      if (jobs.length === 0) {
        if (wrapped) break;
        // At the end of the queue: what was jumped over or put off comes next.
        wrapped = true;
        after = 0;
        continue;
      }
      // The page's files are looked at together (one read of the source state).
      const wanted = new Map<string, Job>();
      for (const job of jobs) {
        if (planned.length + wanted.size >= size) break;
        after = job.id;
        const id = keyId({ input_file: job.input_file, server, dest: job.dest });
        if (exclude.has(id) || this.#entries.has(id) || wanted.has(id)) continue;
        wanted.set(id, job);
      }
      const files = this.#deps.filesOf([...wanted.values()]);
      for (const [i, [id, job]] of [...wanted].entries()) {
        const file = files[i];
        if (!file) continue;
        let resolve!: (c: Claim) => void;
        let reject!: (e: unknown) => void;
        const answer = new Promise<Claim>((res, rej) => {
          resolve = res;
          reject = rej;
        });
        // A job that never waits for it must not see an unhandled rejection.
        answer.catch(() => {});
        const entry: AheadEntry = { ...file, job, at: 0, answer };
        this.#entries.set(id, entry);
        this.#counted(entry, 1);
        planned.push({ id, entry, resolve, reject });
      }
    }
    this.#cursor.set(server, after);
    // What another node's record vouches for is known "done": only the others are asked.
    const asked = planned.filter((p) => !p.entry.known);
    return {
      items: asked.map((p) => ({
        key: p.entry.key,
        fingerprint: p.entry.fingerprint,
        stat: p.entry.statAsk,
      })),
      entries: planned.map((p) => p.entry),
      settle: (answers, now) => {
        let i = 0;
        const givenBack: AheadEntry[] = [];
        const claims = planned.map((p): Claim => {
          const e = p.entry;
          if (e.known) return { kind: "done", record: e.known };
          const c = answers[i++]!;
          if (e.md5 !== undefined) return c;
          if (c.kind === "done") withVouchedMd5(e, c.record);
          if (c.kind !== "mine" || !c.record || !mayBeCopy(c.record, e.stat)) return c;
          // Another stat, the same size and mtime: read now, as the job would.
          const md5 = this.#deps.read?.(e);
          if (md5 === undefined) return c;
          e.md5 = md5;
          e.fingerprint = fingerprint(e.stat.size, e.stat.mtimeMs, md5);
          if (e.fingerprint !== c.record.fingerprint) return c;
          givenBack.push(e);
          return { kind: "done", record: c.record };
        });
        planned.forEach((p, k) => {
          const c = claims[k]!;
          p.entry.claim = c;
          p.entry.at = now;
          p.resolve(c);
        });
        if (shouldJump(claims)) {
          this.#jump(server);
          this.#size.set(server, Math.min(size * 2, AHEAD_BATCH_MAX));
        } else this.#size.delete(server);
        return givenBack;
      },
      fail: (e) => {
        for (const p of planned) {
          if (this.#entries.get(p.id) === p.entry) this.#delete(p.id, p.entry);
          p.reject(e);
        }
      },
    };
  }

  /**
   * Another node works where this one looks (its answers were mostly
   * "done" or "busy"): look on from a random point between here and the end
   * of the queue, so nodes sharing a folder spread over it. What is jumped
   * over comes back when the look reaches the end.
   */
  #jump(server: string) {
    const from = this.#cursor.get(server) ?? 0;
    const to = this.#deps.lastJobId();
    if (to <= from) return;
    this.#cursor.set(server, from + Math.floor(this.#random() * (to - from)));
  }

  /** Removes the entry `e` kept under `id`. */
  #delete(id: string, e: AheadEntry): void {
    this.#entries.delete(id);
    if (!e.handed) this.#counted(e, -1);
  }

  /** Counts `e` in (`1`) or out (`-1`) of its server's entries not yet handed out. */
  #counted(e: AheadEntry, by: 1 | -1): void {
    const server = e.key.server;
    const n = (this.#unhanded.get(server) ?? 0) + by;
    if (n > 0) this.#unhanded.set(server, n);
    else this.#unhanded.delete(server);
  }

  /** The answer kept for `key`, removed (each answer serves one job). */
  take(key: SharedKey): AheadEntry | undefined {
    const id = keyId(key);
    const e = this.#entries.get(id);
    if (e) this.#delete(id, e);
    return e;
  }

  /** Whether the answer kept for `key` is this node's lease, still fit to serve its job. */
  holds(key: SharedKey, now: number, leaseMs: number): boolean {
    const e = this.#entries.get(keyId(key));
    return e?.claim?.kind === "mine" && !aheadExpired(e, now, leaseMs);
  }

  /** Removes `entry` if it is still the one kept for its key (its job was put off). */
  forget(entry: AheadEntry): void {
    const id = keyId(entry.key);
    if (this.#entries.get(id) === entry) this.#delete(id, entry);
  }

  /** The MD5 known ahead for `key` (read, or vouched for), when the file has not changed since. */
  md5For(key: SharedKey, stat: Fingerprint): string | undefined {
    const e = this.#entries.get(keyId(key));
    if (!e) return undefined;
    const s = e.stat;
    const same = s.size === stat.size && s.mtimeMs === stat.mtimeMs &&
      s.ctimeMs === stat.ctimeMs && s.ino === stat.ino;
    return same ? e.md5 : undefined;
  }

  /** The entry of a job that ended without asking, removed: release it once it answers "mine". */
  unused(key: SharedKey): AheadEntry | undefined {
    return this.take(key);
  }

  /** Removes the answers too old to serve; returns the removed ones (release the "mine" ones). */
  sweep(now: number, leaseMs: number): AheadEntry[] {
    const out: AheadEntry[] = [];
    for (const [id, e] of this.#entries) {
      if (!aheadExpired(e, now, leaseMs)) continue;
      this.#delete(id, e);
      out.push(e);
    }
    return out;
  }

  /** Removes every entry (at shutdown); returns them. */
  drain(): AheadEntry[] {
    const out = [...this.#entries.values()];
    this.#entries.clear();
    this.#unhanded.clear();
    return out;
  }
}
