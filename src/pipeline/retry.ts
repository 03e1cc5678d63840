/**
 * Retry policy in one place: per-file backoff (exponential with jitter,
 * failing after a number of attempts) and the server-level pause that all
 * transfers to a failing server share, like rclone's pacer.
 *
 * @module
 */
import { NEVER } from "../store/store.ts";

/** Backoff settings, in milliseconds. */
export interface BackoffSettings {
  initialMs: number;
  maxMs: number;
  /** Attempts after which a file shows as failed. */
  failAfter: number;
}

/** Multiplies `ms` by a random factor in [0.8, 1.2): parallel retries spread out. */
export function jittered(ms: number, random: () => number = Math.random): number {
  return Math.round(ms * (0.8 + random() * 0.4));
}

/** What to do with a file after a failed attempt. */
export interface NextAttempt {
  /** Milliseconds until the next attempt ({@linkcode NEVER}-based for fatal errors). */
  delayMs: number;
  /** Whether the file now shows as failed. */
  failed: boolean;
}

/**
 * The delay before attempt `attempts + 1` of a file, after an error of
 * `kind`; fatal errors wait forever (until a retry is asked for or the
 * fault is fixed: a reload, a restart, the server recovering).
 *
 * @example
 * ```ts
 * import { nextAttempt } from "./retry.ts";
 * const n = nextAttempt("retry", 1, { initialMs: 1000, maxMs: 60000, failAfter: 5 }, 0, () => 0.5);
 * if (n.delayMs !== 1000 || n.failed) throw new Error("unexpected");
 * ```
 */
export function nextAttempt(
  kind: string,
  attempts: number,
  s: BackoffSettings,
  now: number,
  random: () => number = Math.random,
): NextAttempt {
  if (kind === "fatal") return { delayMs: NEVER - now, failed: true };
  const delayMs = jittered(Math.min(s.initialMs * 2 ** (attempts - 1), s.maxMs), random);
  return { delayMs, failed: attempts >= s.failAfter };
}

/**
 * A server's pause: transfers running in parallel fail together, so the
 * first failure pauses the server for all of them; the pause doubles while
 * failures go on and resets on the first success.
 *
 * @example
 * ```ts
 * import { Pacer } from "./retry.ts";
 * const p = new Pacer({ initialMs: 100, maxMs: 1000 }, () => 0.5);
 * p.fail(0);
 * if (p.blockedUntil !== 100) throw new Error(String(p.blockedUntil));
 * if (!p.succeed()) throw new Error("a recovery is reported");
 * ```
 */
export class Pacer {
  readonly #s: { initialMs: number; maxMs: number };
  readonly #random: () => number;
  /** Current pause length (0: healthy). */
  backoff = 0;
  /** No transfer starts before this time. */
  blockedUntil = 0;

  constructor(settings: { initialMs: number; maxMs: number }, random: () => number = Math.random) {
    this.#s = settings;
    this.#random = random;
  }

  /** Whether the server is paused at `now`. */
  blocked(now: number): boolean {
    return this.blockedUntil > now;
  }

  /**
   * Records a server failure at `now`; returns the new pause in milliseconds,
   * or undefined when a pause is already running (parallel failures).
   */
  fail(now: number): number | undefined {
    if (this.blockedUntil > now) return undefined;
    this.backoff = this.backoff === 0
      ? this.#s.initialMs
      : Math.min(this.backoff * 2, this.#s.maxMs);
    const delay = jittered(this.backoff, this.#random);
    this.blockedUntil = now + delay;
    return delay;
  }

  /** Records a success; returns true when the server was failing before (it came back). */
  succeed(): boolean {
    if (this.backoff === 0) return false;
    this.backoff = 0;
    return true;
  }
}
