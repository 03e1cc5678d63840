/**
 * The link of a fleet node to the shared store: opens it (migrating the
 * schema), bounds every call, and knows whether the store answers.
 *
 * Contract:
 * - {@linkcode FleetLink.call} fails at once with {@linkcode FleetUnavailable}
 *   while the store is down, until the next retry (backoff 1 s doubling to
 *   10 s); a probe call (the heartbeat) always tries;
 * - every call, opening the store included, ends within
 *   {@linkcode CALL_TIMEOUT_MS}: a call that hangs fails, and the store is
 *   opened afresh for the next one;
 * - only a store out of reach counts as down (no connection, a timeout, a
 *   server shutting down, a login refused, a race lost again and again); an
 *   error the store answers a call with (a value it refuses, a query's own
 *   error) is that call's: it is thrown as it is, so the job that made the
 *   call fails visibly, with the reason, and the other calls go on. (A
 *   refused value taken for an outage requeued its job silently, forever.);
 * - the password of the store's URL never appears in a message;
 * - a connection the database server ends under a checked-out client is not
 *   fatal to the process while the link is open ({@linkcode isDroppedDbConnection}).
 *
 * @module
 */
import { errorMessage, StoreUnavailable } from "../errors.ts";
import type { Logger } from "../log.ts";
import { classifyDbError, openSharedStore } from "../store/shared/open.ts";
import type { SharedStore } from "../store/shared/types.ts";

/** The shared store cannot be reached: the job waits in the local queue until `retryAt`. */
export class FleetUnavailable extends Error {
  readonly retryAt: number;
  constructor(message: string, retryAt: number) {
    super(message);
    this.name = "FleetUnavailable";
    this.retryAt = retryAt;
  }
}

/** Longest a call to the shared store may take before it counts as failed. */
const CALL_TIMEOUT_MS = 15_000;

/** Longest wait between two attempts to reach the shared store. */
const MAX_BACKOFF_MS = 10_000;

/**
 * Whether an uncaught error is a database connection that the server ended
 * (PostgreSQL class 57P: shutdown, crash, restart; or the socket closing
 * under it). The pg client emits those as an 'error' event on a connection
 * checked out of its pool; the PostgreSQL store listens on every client it
 * opens (whatever the error, e.g. a reset), and this stays as the net for a
 * driver that raises one elsewhere: the call that used the connection fails
 * on its own and the pool opens a new one. Anything else stays fatal.
 */
export function isDroppedDbConnection(e: unknown): boolean {
  const x = e as {
    name?: string;
    code?: unknown;
    message?: unknown;
    constructor?: { name?: string };
  };
  if (!x || typeof x !== "object") return false;
  const code = typeof x.code === "string" ? x.code : "";
  const message = typeof x.message === "string" ? x.message : "";
  if (x.constructor?.name === "DatabaseError" && /^57P0\d$/.test(code)) return true;
  return message === "Connection terminated unexpectedly";
}

/** What {@linkcode FleetLink} needs. */
export interface FleetLinkOptions {
  /** The store's URL, and the same without its password (for messages). */
  url: string;
  redacted: string;
  node: string;
  log: Logger;
  /** The store answers again after it was down. */
  back(): void;
}

/** One node's connection to the shared store. */
export class FleetLink {
  readonly #o: FleetLinkOptions;
  #shared: SharedStore | undefined;
  #opening: Promise<SharedStore> | undefined;
  #downSince: number | null = null;
  #retryAt = 0;
  #backoff = 0;
  #lastError: string | null = null;
  #loggedDownAt = 0;

  constructor(options: FleetLinkOptions) {
    this.#o = options;
  }

  /** From now until {@linkcode close}, a connection the server ends is not fatal. */
  listen(): void {
    globalThis.addEventListener("error", this.#onUncaught);
  }

  /** See {@linkcode isDroppedDbConnection}: kept from ending the process while the fleet runs. */
  readonly #onUncaught = (ev: ErrorEvent) => {
    if (!isDroppedDbConnection(ev.error)) return;
    ev.preventDefault();
    this.#o.log.debug(`The shared store dropped a connection: ${errorMessage(ev.error)}`);
  };

  /** Whether the shared store answered the last call. */
  get reachable(): boolean {
    return this.#downSince === null;
  }

  /**
   * Runs `fn` on the shared store. While it is down, fails at once until
   * the next retry (backoff 1 s doubling to 10 s); the heartbeat probes.
   */
  async call<T>(fn: (s: SharedStore) => Promise<T>, probe = false): Promise<T> {
    const now = Date.now();
    if (this.#downSince !== null && now < this.#retryAt && !probe) {
      throw new FleetUnavailable(this.#downMessage(), this.#retryAt);
    }
    let opened = false;
    try {
      const out = await this.#bounded((async () => {
        const store = await this.#open();
        opened = true;
        return fn(store);
      })());
      if (this.#downSince !== null) {
        this.#o.log.info(
          `The shared store ${this.#o.redacted} answers again (unreachable for ${
            Math.round((Date.now() - this.#downSince) / 1000)
          } s)`,
        );
        this.#downSince = null;
        this.#backoff = 0;
        this.#lastError = null;
        this.#o.back();
      }
      return out;
    } catch (e) {
      if (e instanceof FleetUnavailable) throw e;
      if (opened && classifyDbError(e) === "other") throw e;
      this.#down(e);
      throw new FleetUnavailable(this.#downMessage(), this.#retryAt);
    }
  }

  /**
   * `work` (opening the store included) within {@linkcode CALL_TIMEOUT_MS}.
   * A call that hangs (a lock wait, a connection gone silent, a pool that
   * never hands out a connection) would hold the job that waits for it, and
   * the periodic work, for good: it fails instead, and the store is opened
   * afresh for the next call.
   */
  async #bounded<T>(work: Promise<T>): Promise<T> {
    let timer = 0;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const s = this.#shared;
        this.#shared = undefined;
        this.#opening = undefined;
        s?.close().catch(() => {});
        reject(new StoreUnavailable(`no answer within ${CALL_TIMEOUT_MS / 1000} s`));
      }, CALL_TIMEOUT_MS) as unknown as number;
    });
    try {
      return await Promise.race([work, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  #open(): Promise<SharedStore> {
    if (this.#shared) return Promise.resolve(this.#shared);
    this.#opening ??= (async () => {
      const s = await openSharedStore(this.#o.url, this.#o.node);
      try {
        await s.migrate();
      } catch (e) {
        await s.close().catch(() => {});
        throw e;
      }
      this.#shared = s;
      return s;
    })().finally(() => (this.#opening = undefined));
    return this.#opening;
  }

  #down(e: unknown) {
    const now = Date.now();
    this.#lastError = errorMessage(e).split(this.#o.url).join(this.#o.redacted);
    this.#downSince ??= now;
    this.#backoff = Math.min(Math.max(this.#backoff * 2, 1000), MAX_BACKOFF_MS);
    this.#retryAt = now + this.#backoff;
    if (now - this.#loggedDownAt > 30_000) {
      this.#loggedDownAt = now;
      this.#o.log.error(
        `${this.#downMessage()}: ${this.#lastError}; uploads wait in the local queue, retrying`,
      );
    }
  }

  #downMessage(): string {
    return `The shared store ${this.#o.redacted} is unreachable since ${
      new Date(this.#downSince ?? Date.now()).toISOString()
    }`;
  }

  /** Since when the store does not answer (ms since the epoch), or null. */
  get downSince(): number | null {
    return this.#downSince;
  }

  /** The last error of a call (password removed), or null once the store answers. */
  get lastError(): string | null {
    return this.#lastError;
  }

  /** Closes the connection; no call is made after this. */
  async close(): Promise<void> {
    globalThis.removeEventListener("error", this.#onUncaught);
    const s = this.#shared;
    this.#shared = undefined;
    await s?.close().catch(() => {});
  }
}
