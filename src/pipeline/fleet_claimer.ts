/**
 * The claims and leases of one fleet node: claims are asked in batches,
 * together with the files of the next queued jobs (claimed ahead, see
 * `fleet_ahead.ts`), so an upload slot rarely waits on the shared store;
 * the leases of running jobs are renewed until they end; leases nobody
 * uses are released.
 *
 * Contract:
 * - a job's claim is answered from what was claimed ahead when that answer
 *   still serves it (same fingerprint, fresh enough), otherwise on demand;
 * - a small file is not read to be claimed ahead unless this node's mirror
 *   holds a record of its size and mtime ({@linkcode MirrorLook}; one that
 *   vouches for its MD5 spares the read): it is claimed with its stat
 *   (`statAsk`), which the shared store answers "done" when a record
 *   vouches for it; a "mine" answer with a record of the same size and
 *   mtime makes it read then, and "done" (its lease released) when it is of
 *   the record's content (`fleet_ahead.ts`); a job claiming on demand does
 *   the same (`fleet_claim.ts`);
 * - a claim asking again after a lost lease (`fleet_lease.ts`) asks without
 *   the stat and its "mine" answer carries no record: the file is uploaded;
 * - jobs whose files another node holds are put off in the local queue
 *   without running, so nodes sharing a folder take different files;
 * - jobs whose files another node uploaded with the same content are
 *   recorded and completed without running, when running them would only
 *   adopt that record (`fleet_settle.ts`);
 * - the scheduler starts the jobs whose claims are in first ({@linkcode
 *   FleetClaimer.ready}), so the look ahead decides the order of work;
 * - a release of a key still on its way is waited for before that key is
 *   claimed again, so it never drops the new lease.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import { DELETED } from "../store/events.ts";
import { keyId } from "../store/shared/_keys.ts";
import type {
  Claim,
  ClaimItem,
  SharedKey,
  SharedRecord,
  SharedStore,
  StatAsk,
} from "../store/shared/types.ts";
import type { FileRow, Job, Store } from "../store/store.ts";
import { readRegularNative } from "../util/_native_read.ts";
import { readRegularSync } from "../util/regular_file.ts";
import { statLike } from "../watch/_stat.ts";
import type { PipelineContext } from "./context.ts";
import type { FleetLeases } from "./fleet_lease.ts";
import { fingerprint, keyOf, statAsk, unreadFingerprint } from "./fleet_keys.ts";
import {
  type AheadBatch,
  type AheadEntry,
  type AheadFile,
  busyWait,
  ClaimAhead,
  claimMore,
  shouldJump,
  useAhead,
} from "./fleet_ahead.ts";
import { type SettleDeps, settleDone } from "./fleet_settle.ts";
import { observe } from "./observe.ts";
import { type Fingerprint, sameStat } from "./plan.ts";

/** Claims asked within this many milliseconds share one round trip. */
const CLAIM_WINDOW_MS = 5;

/** Files larger than this are claimed when their job runs, not ahead. */
const AHEAD_MAX_BYTES = 256 * 1024;

/** What {@linkcode FleetClaimer} needs of the node. */
export interface ClaimerDeps extends SettleDeps {
  ctx: PipelineContext;
  store: Store;
  log: Logger;
  /** Runs a call on the shared store (fails at once while it is unreachable). */
  call<T>(fn: (s: SharedStore) => Promise<T>): Promise<T>;
  /** Whether the shared store answered the last call. */
  reachable(): boolean;
  /** The leases of running jobs: renewed, and checked before a job records. */
  held: FleetLeases;
  /** What this node's mirror of the shared record says of a job's file with this stat. */
  look(job: Job, stat: Fingerprint): MirrorLook;
  /**
   * Called when the shared store answered that other nodes uploaded or
   * upload files this node looked ahead at: their records are worth
   * following now, so the next looks know them without asking.
   */
  othersHere(): void;
}

/**
 * What this node's mirror of the shared record says of a job's file before
 * it is claimed ahead.
 */
export type MirrorLook =
  /**
   * Another node's record vouches for the file's MD5 (`vouchedMd5` in
   * `fleet_keys.ts`): the file need not be read; with that record when the
   * mirror holds it as vouched (a claim would answer "done" with it).
   */
  | { md5: string; record?: SharedRecord }
  /**
   * A record of the file's size and mtime that does not vouch for it (racy,
   * or another stat): the content decides, so the file is read and claimed
   * with its fingerprint (a "done" answer then takes no lease).
   */
  | { read: true }
  /** No record, or one of other content: claimed unread, with the stat. */
  | undefined;

/** The claims of one node. */
export class FleetClaimer {
  readonly #d: ClaimerDeps;
  readonly #ahead: ClaimAhead;
  #closed = false;

  constructor(deps: ClaimerDeps) {
    this.#d = deps;
    const store = deps.store;
    this.#ahead = new ClaimAhead({
      peek: (server, limit, afterId) => store.peek(server, limit, Date.now(), afterId),
      lastJobId: () => store.lastJobId(),
      filesOf: (jobs) => {
        const recorded = store.recordedFiles(jobs.map((j) => j.input_file));
        return jobs.map((j) => this.#aheadFile(j, recorded.get(j.input_file)));
      },
      read: (file) => this.#hash(file.key.input_file, file.stat),
    });
  }

  /** Lease length: a node silent this long is gone, and so is its lease. */
  get #leaseMs(): number {
    return this.#d.ctx.config.settings.nodeTimeout * 1000;
  }

  /** Gives back what was claimed ahead and no job took within half a lease (call periodically). */
  sweep(): void {
    this.#releaseUnused(this.#ahead.sweep(Date.now(), this.#leaseMs));
  }

  /**
   * Claims the upload of a job's file with fingerprint `fp`, and `stat`
   * when its content was not read (see `SharedStore.claim`). Throws
   * {@linkcode FleetUnavailable} when the shared store cannot be reached.
   * "mine": the lease is renewed until {@linkcode finished} (or
   * {@linkcode giveBack}). The answer usually waits already (claimed ahead,
   * see `fleet_ahead.ts`); otherwise it is asked together with the next
   * jobs' files.
   */
  async claim(job: Job, server: string, fp: string, stat?: StatAsk): Promise<Claim> {
    const key = keyOf(job, server);
    let c: Claim | undefined;
    const kept = this.#ahead.take(key);
    // After a lost lease the file may be asked for again (see `fleet_lease.ts`): never from ahead,
    // never by its stat.
    const asked = this.#d.held.fingerprintToClaim(key, fp);
    const again = asked !== fp;
    if (kept && asked === fp) {
      let use = useAhead(kept, fp, Date.now(), this.#leaseMs);
      if (use === "wait") {
        // In flight: its failure is the failure of the on-demand claim below.
        await kept.answer.catch(() => {});
        use = useAhead(kept, fp, Date.now(), this.#leaseMs);
      }
      if (use === "use") c = kept.claim;
    }
    // A release of this key still on its way must not drop the lease claimed now.
    await this.#releasing.get(keyId(key));
    c ??= await new Promise<Claim>((resolve, reject) => {
      this.#claims.push({
        key,
        fingerprint: asked,
        stat: again ? undefined : stat,
        resolve,
        reject,
      });
      this.#batchSoon();
    });
    // Nothing to compare: the file is uploaded again.
    if (again && c.kind === "mine" && c.record) c = { kind: "mine", until: c.until };
    this.#aheadSoon(server);
    this.#d.held.claimed(job.id, key, fp, c);
    return c;
  }

  /**
   * The jobs of `server` to start first: their files are claimed already
   * (see `fleet_ahead.ts`). `wait`: more answers are on their way (and
   * {@linkcode onAnswers} is called then), so other jobs need not start
   * meanwhile and claim on their own.
   */
  ready(server: string, limit: number): { ids: number[]; wait: boolean } {
    const r = this.#ahead.ready(server, limit, Date.now(), this.#leaseMs);
    this.#pick.set(server, Math.max(limit, this.#pick.get(server) ?? 0));
    this.#aheadSoon(server);
    return r;
  }

  /** Whether this node holds the lease on a job's file, claimed ahead for it and not yet used. */
  holds(job: Job, server: string): boolean {
    return this.#ahead.holds(keyOf(job, server), Date.now(), this.#leaseMs);
  }

  /** Called when answers claimed ahead came in (or failed): the scheduler picks again. */
  onAnswers: () => void = () => {};

  /** The MD5 of a job's file known when it was claimed ahead, when the file is unchanged. */
  md5For(job: Job, server: string, stat: Fingerprint): string | undefined {
    return this.#ahead.md5For(keyOf(job, server), stat);
  }

  /**
   * Gives back the lease a job holds from a "mine" answer when it uploads
   * nothing after all (another node's record is of its content): released
   * at once, as a "done" answer drops it, and no longer renewed.
   */
  giveBack(job: Job): void {
    const key = this.#d.held.drop(job.id);
    if (key) this.#release(key);
  }

  /** Claims waiting for the next round trip. */
  #claims: (ClaimItem & {
    resolve: (c: Claim) => void;
    reject: (e: unknown) => void;
  })[] = [];
  /** Per server: the most jobs the scheduler asked for at once ({@linkcode ready}). */
  readonly #pick = new Map<string, number>();
  /** Servers whose next jobs are to be claimed ahead in the next round trip. */
  readonly #aheadFor = new Set<string>();
  #batchTimer: number | undefined;

  /** Claims the next jobs' files of `server` when few answers are left for them (`claimMore`). */
  #aheadSoon(server: string) {
    if (this.#closed || !claimMore(this.#ahead.count(server), this.#pick.get(server) ?? 0)) return;
    this.#aheadFor.add(server);
    this.#batchSoon();
  }

  /** Claims asked within {@linkcode CLAIM_WINDOW_MS} share one round trip. */
  #batchSoon() {
    this.#batchTimer ??= setTimeout(() => {
      this.#batchTimer = undefined;
      this.#claimBatch();
    }, CLAIM_WINDOW_MS) as unknown as number;
  }

  async #claimBatch(): Promise<void> {
    const batch = this.#claims.splice(0);
    const servers = new Set([...this.#aheadFor, ...batch.map((b) => b.key.server)]);
    this.#aheadFor.clear();
    const asked = new Set(batch.map((b) => keyId(b.key)));
    const ahead: AheadBatch[] = [];
    if (!this.#closed && this.#d.reachable()) {
      try {
        for (const server of servers) ahead.push(this.#ahead.plan(server, asked));
      } catch (e) {
        // The local queue cannot be read: claim what was asked only.
        this.#d.log.debug(`Cannot look ahead in the queue: ${errorMessage(e)}`);
      }
    }
    const items: ClaimItem[] = [
      ...batch.map((b) => ({ key: b.key, fingerprint: b.fingerprint, stat: b.stat })),
      ...ahead.flatMap((a) => a.items),
    ];
    if (items.length === 0 && ahead.every((a) => a.entries.length === 0)) return;
    try {
      // Only known answers (another node's records in the mirror): no round trip.
      const claims = items.length === 0
        ? []
        : await this.#d.call((s) =>
          items.length === 1
            ? s.claim(
              items[0]!.key,
              items[0]!.fingerprint,
              Date.now(),
              this.#leaseMs,
              items[0]!.stat,
            )
              .then((c) => [c])
            : s.claimMany(items, Date.now(), this.#leaseMs)
        );
      batch.forEach((b, i) => b.resolve(claims[i]!));
      if (this.#d.log.debugEnabled) {
        const n = (from: number, kind: string) =>
          claims.slice(from).filter((c) => c.kind === kind).length;
        const known = ahead.reduce((t, a) => t + a.entries.length - a.items.length, 0);
        this.#d.log.debug(
          `Claimed ${batch.length} on demand and ${items.length - batch.length} ahead: ` +
            `${n(0, "mine")} mine, ${n(0, "done")} done, ${n(0, "busy")} busy; ` +
            `${known} known done from the mirror`,
        );
      }
      let at = batch.length;
      const now = Date.now();
      for (const a of ahead) {
        // Read and found of the record's content: done, the lease taken for them goes.
        for (const e of a.settle(claims.slice(at, at + a.items.length), now)) this.#release(e.key);
        at += a.items.length;
      }
      if (this.#closed) this.#releaseUnused(this.#ahead.drain());
      else {
        const entries = ahead.flatMap((a) => a.entries);
        const fromStore = entries.filter((e) => !e.known);
        if (shouldJump(fromStore.map((e) => e.claim!))) this.#d.othersHere();
        this.#putOff(entries, now);
        // Jobs whose files another node uploaded with this content complete without running.
        for (const e of settleDone(entries, this.#d, now)) this.#ahead.forget(e);
        // Mostly busy (another node is ahead in the same folder): look further at once.
        for (const server of servers) this.#aheadSoon(server);
      }
      if (ahead.length > 0) this.onAnswers();
    } catch (e) {
      for (const b of batch) b.reject(e);
      for (const a of ahead) a.fail(e);
      if (ahead.length > 0) this.onAnswers();
    }
  }

  /**
   * Jobs whose files another node holds wait in the local queue without
   * running, so the next jobs go first: nodes sharing a folder split it.
   */
  #putOff(entries: readonly AheadEntry[], now: number) {
    const busy = entries.filter((e) => e.claim?.kind === "busy");
    if (busy.length === 0) return;
    try {
      this.#d.store.tx(() => {
        for (const e of busy) {
          const until = (e.claim as { until: number }).until;
          // Asked again at the first wait every time: the question is batched, the job never ran.
          if (this.#d.store.defer(e.job, now + busyWait(until, now, 0))) {
            this.#ahead.forget(e);
          }
        }
      });
    } catch (e) {
      // They run and wait then.
      this.#d.log.debug(`Cannot put off jobs: ${errorMessage(e)}`);
    }
  }

  /**
   * The file of a queued job as a claim ahead takes it; undefined: the job
   * claims itself. `recorded`: the file as the source state last recorded it
   * (a scan or a watcher just did), whose stat is taken without looking at
   * the file again: an answer serves only a job whose file still has the
   * fingerprint it was claimed with (`useAhead`), so a file changed since is
   * claimed by its job.
   */
  #aheadFile(job: Job, recorded?: FileRow): AheadFile | undefined {
    if (job.event === DELETED) return undefined;
    const source = this.#d.ctx.config.sources.find((x) => x.name === job.source);
    if (!source) return undefined;
    try {
      const stat = recorded
        ? {
          size: recorded.size,
          mtimeMs: recorded.mtime_ms,
          ctimeMs: recorded.ctime_ms,
          ino: recorded.ino,
        }
        : observe(job.input_file, source).stat;
      // Big files are read once, when they run; their upload outlasts a round trip anyway.
      if (!stat || stat.size > AHEAD_MAX_BYTES) return undefined;
      const look = this.#d.look(job, stat);
      const md5 = look && "md5" in look
        ? look.md5
        : look?.read
        ? this.#hash(job.input_file, stat)
        : undefined;
      return {
        key: keyOf(job, job.server),
        // Not read: claimed with the stat; a "mine" answer with a record its job may compare.
        ...(md5 === undefined
          ? { fingerprint: unreadFingerprint(stat), statAsk: statAsk(stat, job.force) }
          : { fingerprint: fingerprint(stat.size, stat.mtimeMs, md5), md5 }),
        stat,
        // Uploaded by another node with the file as it is (its record in the mirror vouches for
        // it): the answer is known, no claim is asked (see `fleet_ahead.ts`).
        ...(look && "record" in look && look.record ? { known: look.record } : {}),
      };
    } catch {
      return undefined;
    }
  }

  /**
   * The MD5 of a small file whose content decides its claim: a record of
   * its size and mtime may be of it (`MirrorLook`, `fleet_ahead.ts`). The C
   * library's calls where they answer, node:fs otherwise; undefined when it
   * is not a regular file with `stat` now (a symlink is never read here), or
   * cannot be read, or changed size since (its job reads it then).
   */
  #hash(path: string, stat: Fingerprint): string | undefined {
    try {
      const now = Deno.lstatSync(path);
      if (!now.isFile || !sameStat(statLike(now), stat)) return undefined;
      const size = stat.size;
      const data = (readRegularNative(path, size) ?? readRegularSync(path)).data;
      return data.length === size ? createHash("md5").update(data).digest("hex") : undefined;
    } catch {
      return undefined;
    }
  }

  /** Releases the leases of answers no job used ("mine" ones, once they have come). */
  #releaseUnused(entries: readonly AheadEntry[]) {
    for (const e of entries) {
      this.#release(e.key, e.answer.then((c) => c.kind === "mine"));
    }
  }

  /** Releases after a failed upload, or when `mine` resolves true. */
  readonly #releasing = new Map<string, Promise<void>>();
  #release(key: SharedKey, mine: Promise<boolean> = Promise.resolve(true)) {
    const id = keyId(key);
    const before = this.#releasing.get(id) ?? Promise.resolve();
    const p: Promise<void> = before.then(() => mine).then(async (held) => {
      if (held) await this.#d.call((s) => s.release(key));
    }).catch(() => {}).finally(() => {
      if (this.#releasing.get(id) === p) this.#releasing.delete(id);
    });
    this.#releasing.set(id, p);
  }

  /**
   * A job ended: stops renewing its lease; releases it unless the job
   * published (`ok`); releases the lease claimed ahead for it if it never
   * asked for it.
   */
  finished(job: Job, ok: boolean): void {
    const unused = this.#ahead.unused(keyOf(job, job.server));
    if (unused) this.#releaseUnused([unused]);
    const release = this.#d.held.finished(job.id, ok);
    if (release) this.#release(release);
  }

  /**
   * Stops renewing, and releases what was claimed ahead and not used (other
   * nodes need not wait for it); bounded by the caller.
   */
  async close(): Promise<void> {
    this.#closed = true;
    this.#d.held.stop();
    if (this.#batchTimer !== undefined) clearTimeout(this.#batchTimer);
    this.#batchTimer = undefined;
    for (const b of this.#claims.splice(0)) b.reject(new Error("The fleet link is closing"));
    const unused = this.#ahead.drain();
    if (!this.#d.reachable()) return;
    await Promise.all(unused.map(async (e) => {
      const c = await e.answer.catch(() => undefined);
      if (c?.kind === "mine") await this.#d.call((s) => s.release(e.key)).catch(() => {});
    }));
  }
}
