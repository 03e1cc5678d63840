/**
 * What the shared store implementations have in common: a claim of one key
 * is a batch of one, so its answer is the batch's by construction.
 *
 * @module
 */
import type { Claim, ClaimItem, SharedKey, StatAsk } from "./types.ts";

/** The base of each shared store: {@linkcode SharedStore.claim} through `claimMany`. */
export abstract class ClaimsInBatches {
  /** See `SharedStore.claimMany`. */
  abstract claimMany(items: readonly ClaimItem[], now: number, leaseMs: number): Promise<Claim[]>;

  /** See `SharedStore.claim`: a batch of one. */
  async claim(
    key: SharedKey,
    fingerprint: string,
    now: number,
    leaseMs: number,
    stat?: StatAsk,
  ): Promise<Claim> {
    const [c] = await this.claimMany([{ key, fingerprint, stat }], now, leaseMs);
    return c!;
  }
}
