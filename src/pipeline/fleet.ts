/**
 * A node of a fleet: the daemon's link to the shared store (see
 * `store/shared/types.ts`) when the `store` setting names one.
 *
 * Contract:
 * - before an upload the worker claims the file's key with the fingerprint
 *   of the source content (`size:mtime:md5`), or, when the content was not
 *   read, with the file's stat (`fleet_claim.ts`): "done" → the record another
 *   node published is recorded here and nothing is uploaded; "busy" → the
 *   job waits; "mine" → this node uploads, renewing the lease meanwhile,
 *   records locally and queues the record in the local outbox in the same
 *   transaction; the publisher sends the outbox (at least once, idempotent);
 *   claims are mostly made ahead, in batches (`fleet_claimer.ts`);
 * - at most `UNPUBLISHED_MAX` (or `UNPUBLISHED_MAX_CHECKED`, below) recorded
 *   uploads the shared store does not know yet, and at most `FREED_MAX`
 *   uploads done that wait to be recorded without holding their upload
 *   slots, so a node killed
 *   leaves at most that many files (and its running uploads) for another
 *   node to upload again; the publisher sends what was recorded while its
 *   last round trip was on its way in one batch;
 * - a node that takes a killed (or silent) node's lease over is told so by
 *   the claim and compares what the destination holds before it uploads;
 *   where every destination can report the MD5 of what it stores
 *   (`storedMd5`), only the killed node's unfinished uploads are uploaded
 *   again, and the bound is `UNPUBLISHED_MAX_CHECKED`;
 * - a failed upload releases the lease; a delete queues an unpublish;
 * - a lease lost while uploading (another node took the file over) makes
 *   the job record nothing and ask again (`fleet_lease.ts`);
 * - a record this node removes (delete, the old name of a move) is
 *   unpublished: the local store queues it with the removal
 *   (`store/fleet_local.ts`);
 * - the shared store unreachable (at start or later) never stops the
 *   daemon: watching goes on, uploads wait in the durable local queue and
 *   are tried again with backoff (so a file on a shared folder is never
 *   uploaded by two nodes because one could not ask), the outbox keeps what
 *   is not yet published, and the status says since when; once it answers
 *   again everything converges. What is buffered meanwhile is bounded
 *   (`storeBufferLimit`, `fleet_buffer.ts`);
 * - every few seconds: a heartbeat with this node's queue sizes and its
 *   change-feed cursor, the release of dead nodes' leases (`nodeTimeout`),
 *   the change feed into this node's web database (`fleet_follow.ts`);
 *   every minute, the pruning of the changes every node has read
 *   ({@linkcode FEED_RETENTION_MS}).
 *
 * @module
 */
import { parseStoreUrl } from "../config/store_url.ts";
import type { Source } from "../config/types.ts";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import { FleetLocal } from "../store/fleet_local.ts";
import type {
  Claim,
  NodeRow,
  SharedRecord,
  SharedServerHealth,
  StatAsk,
} from "../store/shared/types.ts";
import type { IntentRow, Job, Store, SyncedRow } from "../store/store.ts";
import { VERSION } from "../version.ts";
import type { PipelineContext } from "./context.ts";
import { type BufferState, FleetBuffer } from "./fleet_buffer.ts";
import { FleetFollower } from "./fleet_follow.ts";
import { FleetHealth } from "./fleet_health.ts";
import { FleetClaimer, type MirrorLook } from "./fleet_claimer.ts";
import { FleetLeases } from "./fleet_lease.ts";
import { FleetLink } from "./fleet_link.ts";
import { keyOf, mayBeCopy, nodeName, vouchedMd5 } from "./fleet_keys.ts";
import { type AdoptedFile, adoptedRow, publishedRecord } from "./fleet_rows.ts";
export { FleetUnavailable, isDroppedDbConnection } from "./fleet_link.ts";
import { FleetPublisher } from "./fleet_publish.ts";
import { RecordAdmission, unpublishedMaxFor } from "./fleet_admit.ts";
export { FREED_MAX, UNPUBLISHED_MAX, UNPUBLISHED_MAX_CHECKED } from "./fleet_admit.ts";
import type { Fingerprint, Route } from "./plan.ts";

/**
 * A node silent this long no longer holds back the pruning of the change
 * feed; when it comes back it copies the whole shared record instead.
 */
export const FEED_RETENTION_MS = 7 * 24 * 3600_000;

/** How often each node prunes the change feed. */
const PRUNE_EVERY_MS = 60_000;

/** What `status` shows of the link (written to the local runtime state). */
export interface FleetRuntime {
  node: string;
  /** The store's URL without its password. */
  store: string;
  reachable: boolean;
  unreachableSince: number | null;
  lastError: string | null;
  outbox: number;
  mirrored: number;
  /** The bound on what is buffered while the shared store is unreachable. */
  buffer?: BufferState;
  at: number;
}

/** The fleet as this node last read it (at its heartbeat). */
export interface FleetView {
  /** When it was read (ms since the epoch). */
  at: number;
  nodes: NodeRow[];
  servers: SharedServerHealth[];
}

/** The link of one daemon to its fleet. */
export class Fleet {
  readonly node: string;
  readonly local: FleetLocal;
  readonly #ctx: PipelineContext;
  readonly #store: Store;
  readonly #log: Logger;
  readonly #redacted: string;
  readonly #link: FleetLink;
  /** Leases held by running jobs: renewed, checked before a job records. */
  readonly #leases: FleetLeases;
  readonly #buffer: FleetBuffer;
  #rescan: (sources: string[]) => void = () => {};
  readonly #publisher: FleetPublisher;
  readonly #follower: FleetFollower;
  readonly #health: FleetHealth;
  readonly #claims: FleetClaimer;
  readonly #admission: RecordAdmission;
  #view: FleetView | undefined;
  #timers: number[] = [];
  #closed = false;

  constructor(ctx: PipelineContext, store: Store, log: Logger) {
    const s = ctx.config.settings;
    const loc = parseStoreUrl(s.store);
    if (typeof loc === "string" || loc.kind === "local") {
      throw new TypeError("Fleet needs a shared store URL");
    }
    this.#ctx = ctx;
    this.#store = store;
    this.#log = log;
    this.#redacted = loc.redacted;
    this.node = nodeName(s.node);
    this.local = new FleetLocal(store, this.node);
    this.#link = new FleetLink({
      url: loc.url,
      redacted: loc.redacted,
      node: this.node,
      log,
      back: () => {
        this.#publisher.flush().catch(() => {});
        this.#refreshBuffer();
      },
    });
    this.#publisher = new FleetPublisher(this.local, (fn) => this.#link.call(fn), log);
    this.#follower = new FleetFollower(this.local, (fn) => this.#link.call(fn), log);
    this.#health = new FleetHealth(
      this.node,
      () => store.serverRows(),
      (fn) => this.#link.call(fn),
    );
    this.#leases = new FleetLeases({
      call: (fn) => this.#link.call(fn),
      leaseMs: () => this.#leaseMs,
      log,
    });
    this.#buffer = new FleetBuffer({
      limit: () => this.#ctx.config.settings.storeBufferLimit,
      log,
    });
    this.#admission = new RecordAdmission({
      max: unpublishedMaxFor(ctx.config.servers),
      outboxSize: () => this.local.outboxSize(),
      flush: () => this.#publisher.flush(),
    });
    this.#claims = new FleetClaimer({
      ctx,
      store,
      local: this.local,
      log,
      call: (fn) => this.#link.call(fn),
      reachable: () => this.reachable,
      held: this.#leases,
      look: (job, stat) => this.#look(job, stat),
      othersHere: () => this.#follower.follow().catch(() => {}),
      route: (job, source, size) => this.route?.(job, source, size),
    });
  }

  /**
   * The nodes and server health the last heartbeat read; undefined before
   * the shared store first answered. Never waits for the database.
   */
  get view(): FleetView | undefined {
    return this.#view;
  }

  /** A node whose last heartbeat is older than this (ms) is gone. */
  get nodeTimeoutMs(): number {
    return this.#leaseMs;
  }

  /** Lease length: a node silent this long is gone, and so is its lease. */
  get #leaseMs(): number {
    return this.#ctx.config.settings.nodeTimeout * 1000;
  }

  /**
   * Publishes local records the shared store may not have yet, then starts
   * the periodic work. `rescan` gets the sources whose changes were held
   * while the local buffer was full, once the shared store answers again.
   */
  start(hooks: { rescan?: (sources: string[]) => void } = {}): void {
    if (hooks.rescan) this.#rescan = hooks.rescan;
    this.#link.listen();
    const n = this.local.seedFromLocal(this.node);
    if (n > 0) this.#log.info(`Publishing ${n} record(s) of this node to the shared store`);
    this.#log.info(`Node "${this.node}" of the fleet sharing ${this.#redacted}`);
    const every = (ms: number, fn: () => Promise<unknown>) => {
      let busy = false;
      const t = setInterval(() => {
        if (busy || this.#closed) return;
        busy = true;
        fn().catch(() => {}).finally(() => (busy = false));
      }, ms) as unknown as number;
      this.#timers.push(t);
    };
    every(2000, () => this.#heartbeat());
    every(1000, () => this.#follower.follow());
    // The rows of published entries go with the next record; a quiet node deletes them here.
    every(1000, async () => {
      this.local.dropSent();
      await this.#publisher.flush();
    });
    every(5000, () => this.#releaseDead());
    every(PRUNE_EVERY_MS, () => this.#prune());
    // Answers claimed ahead that no job took within half a lease go back.
    every(Math.max(250, this.#leaseMs / 4), () => {
      this.#claims.sweep();
      return Promise.resolve();
    });
    // Failures are noted by #call (the status says since when); the timers try again.
    const quiet = () => {};
    this.#heartbeat().catch(quiet);
    this.#publisher.flush().catch(quiet);
    this.#follower.follow().catch(quiet);
  }

  /**
   * Claims the upload of a job's file, with the file's stat when its content
   * was not read (see `fleet_claimer.ts`). Throws
   * {@linkcode FleetUnavailable} when the shared store cannot be reached.
   * "mine": the lease is renewed until {@linkcode finished} or
   * {@linkcode giveBack}.
   */
  claim(job: Job, server: string, fp: string, stat?: StatAsk): Promise<Claim> {
    return this.#claims.claim(job, server, fp, stat);
  }

  /** Releases a job's lease at once: after a "mine" answer it adopts another node's record. */
  giveBack(job: Job): void {
    this.#claims.giveBack(job);
  }

  /**
   * The jobs of `server` to start first, their files claimed already;
   * `wait`: more are on their way ({@linkcode onAnswers} is called then).
   */
  ready(server: string, limit: number): { ids: number[]; wait: boolean } {
    return this.#claims.ready(server, limit);
  }

  /** Whether this node holds the lease on a job's file, claimed ahead for it and not yet used. */
  holds(job: Job, server: string): boolean {
    return this.#claims.holds(job, server);
  }

  /**
   * After a job's upload, before it records: throws a `RequeueError` when
   * another node took the file over meanwhile (see `fleet_lease.ts`).
   */
  confirm(job: Job): Promise<void> {
    return this.#leases.confirm(job.id);
  }

  /**
   * Whether a scan batch of `n` changes of `source` may be queued now; false
   * while the shared store is unreachable and the local buffer is full (see
   * `fleet_buffer.ts`).
   */
  admit(source: string, n: number): boolean {
    return this.#buffer.admit(source, n, this.reachable, Date.now());
  }

  /**
   * The route of a job's file to its destination as the worker computes it
   * (rule and chain signature); until it is set, no job answered "done"
   * ahead is settled without running (see `fleet_settle.ts`).
   */
  route: ((job: Job, source: Source, size: number) => Route | undefined) | undefined;

  /** Called when answers claimed ahead came in (or failed): the scheduler picks again. */
  set onAnswers(fn: () => void) {
    this.#claims.onAnswers = fn;
  }

  /** The MD5 of a job's file computed when it was claimed ahead, when the file is unchanged. */
  md5For(job: Job, server: string, stat: Fingerprint): string | undefined {
    return this.#claims.md5For(job, server, stat);
  }

  /**
   * The MD5 of a job's file that another node's record (as this node's
   * mirror of the shared record holds it) vouches for, when the file has
   * the stat that node hashed it with and the record is not racy (see
   * `vouchedMd5`): a node sharing a folder need not read what another
   * uploaded. Undefined: read the file.
   */
  vouched(job: Job, server: string, stat: Fingerprint): string | undefined {
    const record = this.local.mirroredStat(keyOf(job, server));
    return record && vouchedMd5(record, stat, job.force);
  }

  /**
   * {@linkcode vouched}, with another node's record of the file from the
   * mirror when it is the one that vouches: what a claim would answer
   * "done" with, known without asking; `read` when the mirror's record has
   * the file's size and mtime but does not vouch (see `MirrorLook`).
   */
  #look(job: Job, stat: Fingerprint): MirrorLook {
    const key = keyOf(job, job.server);
    const seen = this.local.mirroredStat(key);
    if (!seen) return undefined;
    const md5 = vouchedMd5(seen, stat, job.force);
    if (!md5) return mayBeCopy(seen, stat) ? { read: true } : undefined;
    const record = this.local.mirrorRecord(key);
    return record?.fingerprint === seen.fingerprint ? { md5, record } : { md5 };
  }

  /** Records locally what another node published for a job's file (a "done" claim). */
  adopt(record: SharedRecord, local: AdoptedFile): void {
    this.#store.putSynced(adoptedRow(record, local));
  }

  /**
   * Queues what a job recorded for the shared store; call inside the
   * transaction that records it locally. `written`: the row the job wrote to
   * `synced_files` in that transaction, when the caller has it (else it is read).
   */
  recorded(
    job: Job,
    server: string,
    kind: "synced" | "deleted" | "skipped",
    written?: SyncedRow,
  ): void {
    const key = keyOf(job, server);
    if (kind === "deleted") {
      // The local delete queued the removal (see `store/fleet_local.ts`).
      this.#publisher.soon();
      return;
    }
    if (kind !== "synced") return;
    const row = written ?? this.#store.getSynced(job.input_file, server, job.dest);
    if (!row) return;
    // Only an upload's row (`written`) may vouch for the content with its stat.
    this.local.queuePublish(publishedRecord(key, row, this.node, written !== undefined));
    if (this.#admission.recording > 0) {
      // Records wait for the ones before to be published (see admitRecord): right after the
      // commit of this transaction, not later; what is recorded meanwhile goes in the next batch.
      queueMicrotask(() => this.#publisher.flush().catch(() => {}));
    } else this.#publisher.soon();
  }

  /**
   * A job ended: stops renewing its lease; releases it unless the job
   * published (`ok`); releases the lease claimed ahead for it if it never
   * asked for it.
   */
  finished(job: Job, ok: boolean): void {
    this.#claims.finished(job, ok);
    this.#admission.finished(job.id);
  }

  /**
   * Call before recording an upload: waits until this node holds fewer
   * than its bound (`UNPUBLISHED_MAX`, or `UNPUBLISHED_MAX_CHECKED` where
   * every destination can be checked) recorded uploads the shared store does
   * not know yet (see `fleet_admit.ts`); `release` gives the job's slots
   * to the next jobs while it waits. A node killed at any moment thus leaves
   * at most that many uploads, and `FREED_MAX` more (besides the
   * ones still running), for another node to upload again, or, where every
   * destination can be checked, to find there.
   */
  admitRecord(job: Job, release?: () => void): Promise<void> {
    return this.#admission.admit(job, release);
  }

  /** Counts the local buffer; hands the held sources back once the store answers. */
  #refreshBuffer(): void {
    try {
      const entries = this.#store.activeCount() + this.local.outboxSize();
      const sources = this.#buffer.refresh(this.reachable, entries);
      if (sources.length > 0) this.#rescan(sources);
    } catch (e) {
      this.#log.debug(`Cannot count the local buffer: ${errorMessage(e)}`);
    }
  }

  async #heartbeat(): Promise<void> {
    const counts = this.#store.queueCounts();
    try {
      await this.#link.call((s) =>
        s.heartbeat({
          queued: counts.queued,
          failed: counts.failed,
          now: Date.now(),
          version: VERSION,
          cursor: this.local.cursor(),
        }), true);
      await this.#health.push(Date.now());
      const [nodes, servers] = await this.#link.call((s) =>
        Promise.all([s.nodes(), s.serverHealth()])
      );
      this.#view = { at: Date.now(), nodes, servers };
    } finally {
      // Counted again now: the counts above are as old as the calls, and batches admitted
      // meanwhile are in the queue already (a stale count would let more in than the limit).
      this.#refreshBuffer();
      this.#writeRuntime();
    }
  }

  async #prune(): Promise<void> {
    const n = await this.#link.call((s) => s.pruneChanges(Date.now(), FEED_RETENTION_MS));
    if (n > 0) this.#log.debug(`Pruned ${n} change(s) every node has read`);
  }

  async #releaseDead(): Promise<void> {
    const n = await this.#link.call((s) => s.releaseDead(Date.now(), this.#leaseMs));
    if (n > 0) {
      this.#log.info(`Released ${n} claim(s) of nodes silent for ${this.#leaseMs / 1000} s`);
    }
  }

  #writeRuntime() {
    const rt: FleetRuntime = {
      node: this.node,
      store: this.#redacted,
      reachable: this.reachable,
      unreachableSince: this.#link.downSince,
      lastError: this.#link.lastError,
      outbox: this.local.outboxSize(),
      mirrored: this.local.mirrored(),
      buffer: this.#buffer.state,
      at: Date.now(),
    };
    try {
      this.#store.setRuntime("fleet", rt);
    } catch {
      // The daemon's heartbeat reports database trouble.
    }
  }

  /** Stops the timers, publishes what it can (bounded by the caller) and closes the connection. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    this.#publisher.stop();
    await this.#claims.close();
    try {
      if (this.reachable) await this.#publisher.flush();
    } catch {
      // Published at the next start.
    }
    try {
      this.local.dropSent();
    } catch {
      // Published again at the next start (idempotent).
    }
    this.#writeRuntime();
    await this.#link.close();
  }

  /** Whether the shared store answered the last call. */
  /**
   * Whether another node's record points at a remote path this node's
   * interrupted upload (an intent) left: the mirror of the shared record,
   * then the shared record of the intent's file, which the mirror of a node
   * down for a while may not know yet. Throws {@linkcode FleetUnavailable}
   * when the shared store cannot tell.
   */
  async recordedElsewhere(server: string, intent: IntentRow): Promise<boolean> {
    if (this.local.mirrorUses(server, intent.remote_path)) return true;
    if (intent.input_file === "") return false;
    const key = { input_file: intent.input_file, server, dest: intent.dest };
    const record = await this.#link.call((s) => s.get(key));
    return record?.remote_path === intent.remote_path;
  }

  get reachable(): boolean {
    return this.#link.reachable;
  }
}
