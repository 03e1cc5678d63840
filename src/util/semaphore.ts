/**
 * A counting semaphore.
 *
 * @module
 */

/**
 * Limits concurrent work to `max` holders; waiters are served in order.
 *
 * @example
 * ```ts
 * import { Semaphore } from "./semaphore.ts";
 * const slots = new Semaphore(2);
 * await slots.acquire();
 * try {
 *   // at most two callers run here at once
 * } finally {
 *   slots.release();
 * }
 * ```
 */
export class Semaphore {
  #free: number;
  readonly #waiters: (() => void)[] = [];

  /** @param max How many may hold it at once (at least 1). */
  constructor(max: number) {
    this.#free = Math.max(1, max);
  }

  /** Free slots right now. */
  get free(): number {
    return this.#free;
  }

  /** Takes a slot without waiting; false when none is free. */
  tryAcquire(): boolean {
    if (this.#free <= 0) return false;
    this.#free--;
    return true;
  }

  /** Waits for a slot; rejects with the signal's reason when `signal` aborts first. */
  acquire(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    if (this.tryAcquire()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const grant = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = () => {
        const i = this.#waiters.indexOf(grant);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(signal!.reason);
      };
      this.#waiters.push(grant);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Gives a slot back (to the next waiter, if any). */
  release(): void {
    const next = this.#waiters.shift();
    if (next) next();
    else this.#free++;
  }
}
