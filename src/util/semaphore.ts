/**
 * A counting semaphore.
 *
 * @module
 */

/** Limits concurrent work to `max` holders. */
export class Semaphore {
  #free: number;
  readonly #waiters: (() => void)[] = [];

  constructor(max: number) {
    this.#free = max;
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

  /** Waits for a slot. */
  async acquire(): Promise<void> {
    if (this.tryAcquire()) return;
    await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  /** Returns a slot. */
  release(): void {
    const next = this.#waiters.shift();
    if (next) next();
    else this.#free++;
  }
}
