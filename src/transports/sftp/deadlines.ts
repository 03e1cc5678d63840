/**
 * The answer deadlines of one SSH connection's requests, kept with one timer
 * per connection instead of one per request (an upload of a small file makes
 * five requests; a timer each cost more than the deadline bookkeeping).
 *
 * Contract: a request not answered `timeoutMs` after it was sent fails with
 * a timeout error at most a quarter of `timeoutMs` later (the timer's
 * period); the connection is then given up (`onExpire`), and every request
 * still waiting on it fails with the same error.
 *
 * @module
 */
import { ConnectionError } from "./errors.ts";

interface Pending {
  since: number;
  fail(err: Error): void;
}

/** Deadlines of the requests waiting on one connection. */
export class Deadlines {
  readonly #timeoutMs: number;
  readonly #onExpire: () => void;
  /** Waiting requests in the order sent (a Map keeps insertion order). */
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #timer: number | undefined;

  constructor(timeoutMs: number, onExpire: () => void) {
    this.#timeoutMs = timeoutMs;
    this.#onExpire = onExpire;
  }

  /** Starts the deadline of a request just sent; returns its id for {@linkcode done}. */
  add(fail: (err: Error) => void): number {
    const id = this.#nextId++;
    this.#pending.set(id, { since: performance.now(), fail });
    if (this.#timer === undefined) {
      const timer = setInterval(() => this.#check(), Math.max(10, this.#timeoutMs / 4));
      // Waiting requests keep the process alive by themselves (their socket); this timer need not.
      Deno.unrefTimer(timer as unknown as number);
      this.#timer = timer as unknown as number;
    }
    return id;
  }

  /** The request was answered (or failed otherwise). */
  done(id: number): void {
    this.#pending.delete(id);
  }

  /** Fails every waiting request with `err` and stops the timer (the connection ended). */
  stop(err?: Error): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    const waiting = [...this.#pending.values()];
    this.#pending.clear();
    if (err) { for (const p of waiting) p.fail(err); }
  }

  #check(): void {
    // The oldest request is the first one: when it is in time, all are.
    const first = this.#pending.values().next();
    if (first.done || performance.now() - first.value.since < this.#timeoutMs) return;
    this.stop(new ConnectionError(`no answer within ${this.#timeoutMs} ms`, "ETIMEDOUT"));
    this.#onExpire();
  }
}
