/**
 * A small generic connection pool shared by the network transports (sftp,
 * ftp): at most `max` connections, opened lazily on demand, reused LIFO,
 * closed after sitting idle for `idleTimeoutMs`, discarded when broken.
 * Waiters are served first-in first-out and can give up with an
 * `AbortSignal`.
 *
 * Until a connection has opened (at the start, and after every failed
 * open), the pool dials one connection at a time: a server that refuses us
 * sees one attempt, not one per waiting caller. A failure that `holdsFailure`
 * accepts (a wrong password, an untrusted host key) is remembered: every
 * acquire fails at once with that error, without dialing, until a backoff
 * expires (`holdMs`, doubling on each repeat up to `maxHoldMs`). A wrong
 * password then costs one login per backoff for the whole server, instead of
 * one per file and retry (which locks the user out through fail2ban).
 * A server that refuses more connections (`isTooMany`) shrinks the pool to
 * what it allowed.
 *
 * @module
 */

/** How a {@linkcode Pool} opens, checks and closes connections. */
export interface PoolOptions<T> {
  /** Most connections open at once (connecting, in use and idle together). At least 1. */
  max: number;
  /** Opens a new connection. Should honour `signal` (abort the handshake). */
  create(signal: AbortSignal): Promise<T>;
  /** Closes a connection. Errors are ignored. */
  destroy(conn: T): Promise<void> | void;
  /** Whether an idle connection can still be used (e.g. its socket is open). Default: always. */
  isAlive?(conn: T): boolean;
  /** Closes connections idle for this long, in milliseconds (default 60 000; 0 keeps them). */
  idleTimeoutMs?: number;
  /**
   * Whether a failed `create` means that no connection can open until the
   * configuration changes (wrong password, host key or certificate). Default: never.
   */
  holdsFailure?(err: unknown): boolean;
  /** First backoff after such a failure, in milliseconds (default 10 000). */
  holdMs?: number;
  /** Longest backoff after repeated such failures, in milliseconds (default 300 000). */
  maxHoldMs?: number;
  /**
   * Whether a failed `create` means that the server refuses more connections
   * (too many users or sessions). With others open, the pool then keeps the
   * number that did open as its size and retries the caller on one of them.
   */
  isTooMany?(err: unknown): boolean;
  /** Told once when the pool shrinks because the server refused more connections. */
  onShrink?(size: number, err: unknown): void;
}

/** A connection lent by {@linkcode Pool.acquire}; give it back exactly once. */
export interface Lease<T> {
  /** The connection. */
  readonly conn: T;
  /** True when the connection was opened for this lease (not reused from the idle list). */
  readonly fresh: boolean;
  /** Returns the healthy connection to the pool. */
  release(): void;
  /** Closes the connection (broken, or its state is unknown) and frees its slot. */
  discard(): void;
}

/** Options for {@linkcode Pool.use}. */
export interface UseOptions {
  /** Gives up waiting for a connection (and is passed to `create`). */
  signal?: AbortSignal;
  /**
   * Whether an error means the connection is broken (it is then discarded
   * instead of returned). Default: every error discards.
   */
  isBroken?(err: unknown): boolean;
  /**
   * Run `fn` once more on a freshly opened connection when it failed with a
   * broken-connection error on a connection reused from the idle list (the
   * server may have dropped it while idle). Only for idempotent work.
   */
  retryStale?: boolean;
}

/** Counters for tests and status output. */
export interface PoolStats {
  /** Connections open or being opened. */
  total: number;
  /** Open connections waiting in the idle list. */
  idle: number;
  /** Connections lent out. */
  busy: number;
  /** Callers waiting for a connection. */
  waiting: number;
}

interface Idle<T> {
  conn: T;
  timer?: ReturnType<typeof setTimeout>;
}

interface Waiter<T> {
  resolve(lease: Lease<T>): void;
  reject(err: unknown): void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/**
 * A bounded pool of reusable connections.
 *
 * @example
 * ```ts
 * import { Pool } from "./pool.ts";
 * const pool = new Pool({
 *   max: 2,
 *   create: () => Promise.resolve({ id: crypto.randomUUID() }),
 *   destroy: () => {},
 * });
 * const id = await pool.use((conn) => Promise.resolve(conn.id));
 * await pool.close();
 * ```
 */
export class Pool<T> {
  readonly #opts: PoolOptions<T>;
  #max: number;
  readonly #idleTimeoutMs: number;
  /** Whether a connection opened since the last failed open (until then: one dial at a time). */
  #proven = false;
  #dialing = 0;
  #dials = 0;
  /** A remembered failure ({@linkcode PoolOptions.holdsFailure}) and until when it holds. */
  #held: { err: unknown; until: number } | undefined;
  #holdMs = 0;
  /** The refusal that limited the size ({@linkcode PoolOptions.isTooMany}), and the size told. */
  #limit: unknown;
  #reported = 0;
  readonly #idle: Idle<T>[] = [];
  readonly #waiters: Waiter<T>[] = [];
  readonly #busy = new Set<T>();
  #total = 0;
  #closed = false;
  readonly #closeController = new AbortController();

  /**
   * Creates an empty pool; nothing connects until the first {@linkcode acquire}.
   *
   * @param options How to open, check and close connections.
   */
  constructor(options: PoolOptions<T>) {
    if (!Number.isInteger(options.max) || options.max < 1) {
      throw new RangeError(`Pool size must be a whole number of at least 1, not ${options.max}`);
    }
    this.#opts = options;
    this.#max = options.max;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
  }

  /** Current counters. */
  get stats(): PoolStats {
    return {
      total: this.#total,
      idle: this.#idle.length,
      busy: this.#busy.size,
      waiting: this.#waiters.length,
    };
  }

  /** Most connections open at once: `max`, or fewer once the server refused more. */
  get size(): number {
    return this.#max;
  }

  /** Connections dialed so far, failed ones included. */
  get dials(): number {
    return this.#dials;
  }

  /** The remembered failure while its backoff lasts ({@linkcode PoolOptions.holdsFailure}). */
  get heldFailure(): unknown {
    return this.#held && this.#held.until > Date.now() ? this.#held.err : undefined;
  }

  /**
   * Lends a connection: an idle live one, a new one while fewer than `max`
   * are open, or the next one given back. Rejects with the signal's reason
   * when `signal` aborts first, and with an error once the pool is closed.
   */
  acquire(signal?: AbortSignal): Promise<Lease<T>> {
    if (this.#closed) return Promise.reject(new Error("Connection pool is closed"));
    if (signal?.aborted) return Promise.reject(signal.reason);
    const idle = this.#takeIdle();
    if (idle !== undefined) return Promise.resolve(this.#lease(idle, false));
    const held = this.heldFailure;
    if (held !== undefined) return Promise.reject(held);
    if (this.#canDial()) return this.#open(signal);
    return this.#wait(signal);
  }

  /** Queues the caller for the next connection given back or slot freed. */
  #wait(signal?: AbortSignal): Promise<Lease<T>> {
    return new Promise<Lease<T>>((resolve, reject) => {
      const waiter: Waiter<T> = { resolve, reject, signal };
      if (signal) {
        waiter.onAbort = () => {
          const i = this.#waiters.indexOf(waiter);
          if (i >= 0) this.#waiters.splice(i, 1);
          reject(signal.reason);
        };
        signal.addEventListener("abort", waiter.onAbort, { once: true });
      }
      this.#waiters.push(waiter);
    });
  }

  /**
   * Runs `fn` with a lent connection and gives it back afterwards: returned
   * on success, discarded when `fn` throws an error that `isBroken` accepts.
   */
  async use<R>(fn: (conn: T) => Promise<R>, options: UseOptions = {}): Promise<R> {
    const isBroken = options.isBroken ?? (() => true);
    let lease = await this.acquire(options.signal);
    let retried = false;
    while (true) {
      try {
        const result = await fn(lease.conn);
        lease.release();
        return result;
      } catch (err) {
        const broken = isBroken(err);
        if (broken) lease.discard();
        else lease.release();
        if (!broken || !options.retryStale || lease.fresh || retried || this.#closed) throw err;
        retried = true;
        // The idle connection had died; every other idle one may be as stale
        // (server restart), so drop them and open a new one.
        this.#dropIdle();
        lease = await this.acquire(options.signal);
      }
    }
  }

  /** Closes idle connections now and every lent one when it comes back; rejects waiters. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeController.abort(new Error("Connection pool is closed"));
    for (const w of this.#waiters.splice(0)) {
      if (w.onAbort) w.signal?.removeEventListener("abort", w.onAbort);
      w.reject(new Error("Connection pool is closed"));
    }
    const conns = [...this.#idle.splice(0).map((i) => this.#clearIdle(i)), ...this.#busy];
    this.#busy.clear();
    this.#total = 0;
    await Promise.all(conns.map((c) => this.#destroy(c)));
  }

  /** A new connection may be dialed now: below the size, and only one at a time until one opened. */
  #canDial(): boolean {
    return this.#total < this.#max && (this.#proven || this.#dialing === 0);
  }

  #takeIdle(): T | undefined {
    while (this.#idle.length > 0) {
      const conn = this.#clearIdle(this.#idle.pop()!);
      if (this.#opts.isAlive?.(conn) ?? true) return conn;
      this.#total--;
      void this.#destroy(conn);
    }
    return undefined;
  }

  #dropIdle(): void {
    for (const i of this.#idle.splice(0)) {
      this.#total--;
      void this.#destroy(this.#clearIdle(i));
    }
  }

  #clearIdle(i: Idle<T>): T {
    if (i.timer !== undefined) clearTimeout(i.timer);
    return i.conn;
  }

  async #open(signal?: AbortSignal): Promise<Lease<T>> {
    this.#total++;
    this.#dialing++;
    this.#dials++;
    const signals = [this.#closeController.signal];
    if (signal) signals.push(signal);
    let conn: T;
    try {
      conn = await this.#opts.create(AbortSignal.any(signals));
    } catch (err) {
      this.#total--;
      this.#dialing--;
      if (!this.#closed && !signal?.aborted) {
        if (this.#opts.holdsFailure?.(err)) {
          this.#hold(err);
        } else if (this.#total > 0 && this.#opts.isTooMany?.(err)) {
          // The server allows only the connections already open (and those
          // of the dials still under way that succeed): keep that size, and
          // give the caller the next connection that comes back.
          this.#limit = err;
          this.#max = Math.max(1, Math.min(this.#max, this.#total - this.#dialing));
          this.#reportLimit();
          // A connection given back while this one dialled sits idle and nobody gives it back
          // again: take it, or this caller would wait for ever.
          const idle = this.#takeIdle();
          if (idle !== undefined) return this.#lease(idle, false);
          return this.#wait(signal);
        } else {
          this.#proven = false;
        }
      }
      this.#serveWaiters();
      throw err;
    }
    this.#dialing--;
    this.#proven = true;
    this.#holdMs = 0;
    this.#held = undefined;
    if (this.#limit !== undefined) {
      // Opened after a refusal: the server allows this many after all.
      this.#max = Math.min(this.#opts.max, Math.max(this.#max, this.#total - this.#dialing));
      this.#reportLimit();
    }
    if (this.#closed) {
      this.#total--;
      await this.#destroy(conn);
      throw new Error("Connection pool is closed");
    }
    if (signal?.aborted) {
      // The caller gave up while we connected: keep the connection for others.
      this.#giveBack(conn);
      throw signal.reason;
    }
    const lease = this.#lease(conn, true);
    // The first connection opened: the others may dial now.
    this.#serveWaiters();
    return lease;
  }

  /** Tells the size the server allowed, once the dials under way have settled. */
  #reportLimit(): void {
    if (this.#dialing > 0 || this.#max === this.#reported) return;
    this.#reported = this.#max;
    this.#opts.onShrink?.(this.#max, this.#limit);
  }

  /** Remembers a failure that no new dial can fix before the configuration changes. */
  #hold(err: unknown): void {
    // Dials that were already under way fail together: one backoff step for all of them.
    if (this.heldFailure === undefined) {
      const first = this.#opts.holdMs ?? 10_000;
      this.#holdMs = this.#holdMs === 0
        ? first
        : Math.min(this.#holdMs * 2, this.#opts.maxHoldMs ?? 300_000);
      this.#held = { err, until: Date.now() + this.#holdMs };
    }
    this.#proven = false;
    // Everyone waiting would dial into the same refusal.
    for (const w of this.#waiters.splice(0)) {
      if (w.onAbort) w.signal?.removeEventListener("abort", w.onAbort);
      w.reject(err);
    }
  }

  #lease(conn: T, fresh: boolean): Lease<T> {
    this.#busy.add(conn);
    let done = false;
    return {
      conn,
      fresh,
      release: () => {
        if (done) return;
        done = true;
        if (!this.#busy.delete(conn)) return; // closed meanwhile
        this.#giveBack(conn);
      },
      discard: () => {
        if (done) return;
        done = true;
        if (!this.#busy.delete(conn)) return;
        this.#total--;
        void this.#destroy(conn);
        this.#serveWaiters();
      },
    };
  }

  #giveBack(conn: T): void {
    if (this.#closed) {
      void this.#destroy(conn);
      return;
    }
    if (!(this.#opts.isAlive?.(conn) ?? true)) {
      this.#total--;
      void this.#destroy(conn);
      this.#serveWaiters();
      return;
    }
    const waiter = this.#nextWaiter();
    if (waiter) {
      waiter.resolve(this.#lease(conn, false));
      return;
    }
    const entry: Idle<T> = { conn };
    if (this.#idleTimeoutMs > 0) {
      const timer = setTimeout(() => {
        const i = this.#idle.indexOf(entry);
        if (i < 0) return;
        this.#idle.splice(i, 1);
        this.#total--;
        void this.#destroy(conn);
      }, this.#idleTimeoutMs);
      // An idle connection must not keep the process alive.
      Deno.unrefTimer(timer as unknown as number);
      entry.timer = timer;
    }
    this.#idle.push(entry);
  }

  /** Slots are free: let waiters open connections (one at a time until one opened). */
  #serveWaiters(): void {
    while (!this.#closed && this.#canDial() && this.#waiters.length > 0) {
      const held = this.heldFailure;
      const waiter = this.#nextWaiter()!;
      if (held !== undefined) {
        waiter.reject(held);
        continue;
      }
      this.#open(waiter.signal).then(waiter.resolve, waiter.reject);
    }
  }

  #nextWaiter(): Waiter<T> | undefined {
    const w = this.#waiters.shift();
    if (w?.onAbort) w.signal?.removeEventListener("abort", w.onAbort);
    return w;
  }

  async #destroy(conn: T): Promise<void> {
    try {
      await this.#opts.destroy(conn);
    } catch {
      // Closing a broken connection may fail; it is gone either way.
    }
  }
}
