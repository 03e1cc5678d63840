/**
 * The bound on what a fleet node has uploaded and the shared store does not
 * know yet: what another node uploads again, besides the running uploads,
 * when this one is killed (see `fleet.ts`).
 *
 * Contract of {@linkcode RecordAdmission.admit}: a job calls it before it
 * records an upload and waits until fewer than its bound
 * ({@linkcode unpublishedMax}) recorded uploads are unknown to the shared
 * store (being recorded, or waiting in the outbox), the outbox being
 * published meanwhile; a job that has to wait gives its upload slots to the
 * next jobs first while fewer than {@linkcode FREED_MAX} others wait so.
 * When the shared store cannot be reached, the record is not held back (the
 * outbox keeps it).
 *
 * @module
 */
import type { Job } from "../store/store.ts";
import { getTransportDef } from "../transports/transport.ts";

/**
 * Recorded uploads of a node the shared store may not know yet (not yet
 * published): what another node uploads again, besides the running uploads,
 * when this one is killed.
 */
export const UNPUBLISHED_MAX = 32;

/**
 * {@linkcode UNPUBLISHED_MAX} where every destination reports what it
 * stores (`storedMd5` transports): the node that takes a killed node's
 * leases over compares what it finds there before uploading, so the
 * killed node's recorded uploads are not sent again and the bound only
 * limits how far publishing may fall behind. Larger batches: fewer waits
 * for a publish, fewer commits.
 */
export const UNPUBLISHED_MAX_CHECKED = 256;

/** The bound for a node whose destinations all report what they store (`checked`) or not. */
export function unpublishedMax(checked: boolean): number {
  return checked ? UNPUBLISHED_MAX_CHECKED : UNPUBLISHED_MAX;
}

/** The bound for a node uploading to `servers` (see {@linkcode unpublishedMax}). */
export function unpublishedMaxFor(servers: readonly { transporter: string }[]): number {
  return unpublishedMax(servers.every((s) => getTransportDef(s.transporter)?.storedMd5 === true));
}

/**
 * Uploads done that wait for {@linkcode RecordAdmission.admit} after giving
 * their upload slots to the next jobs: uploads go on while a publish is on
 * its way. They too are uploaded again by another node when this one is
 * killed.
 */
export const FREED_MAX = 8;

/** What {@linkcode RecordAdmission} needs of the node. */
export interface AdmissionDeps {
  /** The bound on unpublished recorded uploads ({@linkcode unpublishedMax}). */
  max: number;
  /** Entries of the local outbox not yet published. */
  outboxSize(): number;
  /** Publishes the outbox; rejects when the shared store fails. */
  flush(): Promise<void>;
}

/** The jobs of one node that record uploads, within the bound. */
export class RecordAdmission {
  readonly #d: AdmissionDeps;
  /** Jobs recording an upload (admitted, not yet finished). */
  readonly #recording = new Set<number>();
  /** Jobs waiting for a recording job to finish. */
  readonly #waiting: (() => void)[] = [];
  /** Jobs waiting that gave their slots back. */
  #freed = 0;

  constructor(deps: AdmissionDeps) {
    this.#d = deps;
  }

  /** How many admitted jobs are recording now. */
  get recording(): number {
    return this.#recording.size;
  }

  /** Waits until `job` may record its upload (see the module doc); `release` gives its slots back. */
  async admit(job: Job, release?: () => void): Promise<void> {
    let freed = false;
    try {
      for (;;) {
        const outbox = this.#d.outboxSize();
        if (outbox + this.#recording.size < this.#d.max) break;
        if (release && !freed && this.#freed < FREED_MAX) {
          freed = true;
          this.#freed++;
          release();
        }
        if (outbox === 0) await new Promise<void>((wake) => this.#waiting.push(wake));
        else if (!(await this.#d.flush().then(() => true, () => false))) break;
      }
    } finally {
      if (freed) this.#freed--;
    }
    this.#recording.add(job.id);
  }

  /** Job `id` ended: its place goes to the jobs waiting. */
  finished(id: number): void {
    if (this.#recording.delete(id)) { for (const wake of this.#waiting.splice(0)) wake(); }
  }
}
