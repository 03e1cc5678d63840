/**
 * The leases this node holds on files it is uploading (see `fleet.ts`):
 * renewed while the job runs, checked before the job records.
 *
 * Contract:
 * - a lease is renewed once a third of its length is gone, by one sweep of
 *   every lease held that runs every sixth of the lease length (one timer
 *   for the node, not one per lease: a node holds hundreds), so at least
 *   half of it is left while the shared store answers; `renew()` false means
 *   another node took the file over (this node was too slow: a stalled
 *   process, the shared store out of reach for longer than the lease): the
 *   lease is lost for good and is never renewed or released again;
 * - {@linkcode FleetLeases.confirm} runs after the upload and before the
 *   record: a lost lease throws a `RequeueError`, so the job records nothing
 *   and publishes nothing (the other node owns the file now) and asks again:
 *   "done" takes the other node's record, "busy" waits for it, "mine"
 *   uploads again (at least once, never recorded twice). A lease that may
 *   have run out unnoticed (no renewal for two thirds of its length) is
 *   renewed first; a store out of reach throws `FleetUnavailable`;
 * - after a lost lease, this node's transfer may have reached the
 *   destination after the other node's. A job that ends unrecorded with a
 *   lease that may have run out unnoticed counts as lost for this. When the other node's record holds
 *   other content than ours ({@linkcode FleetLeases.fingerprintToClaim}),
 *   the next claim asks with a fingerprint no record holds: the file is
 *   uploaded again under a new lease rather than trusted.
 *
 * @module
 */
import { RequeueError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { keyId } from "../store/shared/_keys.ts";
import type { Claim, SharedKey, SharedStore } from "../store/shared/types.ts";

/**
 * The fingerprint a claim asks with to upload `fp`'s content again: no
 * record's fingerprint (`size:mtime:md5`, see `fingerprint()` in `fleet_keys.ts`)
 * has a fourth part. Plain text: PostgreSQL's `text` refuses a NUL byte, and
 * a marker holding one made every such claim fail on PostgreSQL.
 */
export function askAgain(fp: string): string {
  return `${fp}:again`;
}

/** How soon a lease claimed with a third of it gone already is renewed, ms. */
const SOON_MS = 100;

/** How soon a job whose lease was lost asks again, ms. */
const LOST_RETRY_MS = 200;

interface Held {
  key: SharedKey;
  /** The fingerprint the lease was claimed for (what this node uploads). */
  fingerprint: string;
  /** Until when the lease is ours, as far as this node knows (ms since the epoch). */
  until: number;
  lost: boolean;
  /** A renewal by the sweep is on its way. */
  renewing: boolean;
}

/** What {@linkcode FleetLeases} needs. */
export interface FleetLeasesOptions {
  /** Runs a call on the shared store (throws `FleetUnavailable` when out of reach). */
  call: <T>(fn: (s: SharedStore) => Promise<T>) => Promise<T>;
  /** Lease length, ms. */
  leaseMs: () => number;
  log: Logger;
  /** The clock (tests). */
  now?: () => number;
}

/** The leases of running jobs. */
export class FleetLeases {
  readonly #o: FleetLeasesOptions;
  readonly #held = new Map<number, Held>();
  /** Files whose lease was lost while this node uploaded them: the fingerprint uploaded. */
  readonly #overtaken = new Map<string, string>();

  constructor(options: FleetLeasesOptions) {
    this.#o = options;
  }

  #now(): number {
    return this.#o.now?.() ?? Date.now();
  }

  /**
   * The fingerprint to claim `key` with for content `fp`: `fp`, unless this
   * node lost the file while uploading other content (see the module doc).
   */
  fingerprintToClaim(key: SharedKey, fp: string): string {
    const uploaded = this.#overtaken.get(keyId(key));
    if (uploaded === undefined) return fp;
    if (uploaded === fp) {
      // The same content either way: whichever transfer came last, the destination is right.
      this.#overtaken.delete(keyId(key));
      return fp;
    }
    return askAgain(fp);
  }

  /**
   * After a claim: "mine" holds the lease for job `id`, renewed until
   * {@linkcode finished} whenever a third of it is gone (see the module
   * doc), also for a lease claimed ahead a while before its job started:
   * for one due already, the next sweep comes within {@linkcode SOON_MS}.
   */
  claimed(id: number, key: SharedKey, fp: string, claim: Claim): void {
    if (claim.kind !== "mine") return;
    this.#overtaken.delete(keyId(key));
    const held: Held = { key, fingerprint: fp, until: claim.until, lost: false, renewing: false };
    this.#held.set(id, held);
    const now = this.#now();
    this.#arm(now, this.#due(held, now) ? SOON_MS : this.#sweepMs());
  }

  /** The timer of the next sweep and when it fires; undefined while no lease is held. */
  #sweeper: { timer: number; at: number } | undefined;

  /** Makes the next sweep come within `ms`. */
  #arm(now: number, ms: number): void {
    if (this.#sweeper && this.#sweeper.at <= now + ms) return;
    if (this.#sweeper) clearTimeout(this.#sweeper.timer);
    const timer = setTimeout(() => this.#sweep(), ms) as unknown as number;
    this.#sweeper = { timer, at: now + ms };
  }

  #sweepMs(): number {
    return Math.max(50, this.#o.leaseMs() / 6);
  }

  /** Whether a third of `held` is gone (as far as this node knows). */
  #due(held: Held, now: number): boolean {
    return now >= held.until - (this.#o.leaseMs() * 2) / 3;
  }

  /** Renews every lease held that is due; runs again while any is held. */
  #sweep(): void {
    this.#sweeper = undefined;
    if (this.#held.size === 0) return;
    const now = this.#now();
    for (const held of this.#held.values()) {
      if (this.#due(held, now)) this.#renewBySweep(held);
    }
    this.#arm(now, this.#sweepMs());
  }

  #renewBySweep(held: Held): void {
    if (held.lost || held.renewing) return;
    held.renewing = true;
    // Out of reach: the next sweep tries again; confirm() decides before the record.
    this.#renew(held).catch(() => {}).finally(() => (held.renewing = false));
  }

  async #renew(held: Held): Promise<boolean> {
    if (held.lost) return false;
    const t = this.#now();
    const ok = await this.#o.call((s) => s.renew(held.key, t, this.#o.leaseMs()));
    if (held.lost) return false;
    if (ok) {
      held.until = t + this.#o.leaseMs();
      return true;
    }
    held.lost = true;
    this.#o.log.warn(
      `Lost the claim on "${held.key.input_file}" to another node: this node records nothing ` +
        "for it and asks again",
    );
    return false;
  }

  /**
   * Before recording job `id`'s upload: throws a `RequeueError` when its
   * lease was lost (see the module doc). Jobs without a lease pass.
   */
  async confirm(id: number): Promise<void> {
    const held = this.#held.get(id);
    if (!held) return;
    const margin = this.#o.leaseMs() / 3;
    if (!held.lost && this.#now() < held.until - margin) return;
    if (held.lost || !(await this.#renew(held))) {
      throw new RequeueError(
        `Another node took "${held.key.input_file}" over: not recorded here`,
        LOST_RETRY_MS,
      );
    }
  }

  /**
   * Job `id` ended: stops renewing. Returns the key whose lease the caller
   * releases: the job's, unless it published (`ok`; a published record
   * drops the lease, until then other nodes wait for it) or lost it.
   */
  finished(id: number, ok: boolean): SharedKey | undefined {
    const held = this.#held.get(id);
    if (!held) return undefined;
    this.#held.delete(id);
    if (held.lost) {
      this.#overtaken.set(keyId(held.key), held.fingerprint);
      return undefined;
    }
    if (ok) return undefined;
    // A job that ended unrecorded (changed during the transfer, a failed transfer) after its
    // lease may have run out unnoticed — this node stalled past it, the sweep has not renewed
    // it yet — may have written the destination after another node recorded the file:
    // ask again as overtaken. The release below is the holder's only, harmless if lost.
    if (this.#now() >= held.until - this.#o.leaseMs() / 3) {
      this.#overtaken.set(keyId(held.key), held.fingerprint);
    }
    return held.key;
  }

  /**
   * Job `id` gives its lease back without uploading (another node's record
   * is of its content): stops renewing. Returns the key to release, unless
   * the lease was lost (another node holds it now).
   */
  drop(id: number): SharedKey | undefined {
    const held = this.#held.get(id);
    if (!held) return undefined;
    this.#held.delete(id);
    return held.lost ? undefined : held.key;
  }

  /** Stops every renewal (the daemon stops). */
  stop(): void {
    if (this.#sweeper) clearTimeout(this.#sweeper.timer);
    this.#sweeper = undefined;
    this.#held.clear();
  }
}
