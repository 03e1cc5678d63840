/**
 * A small generic connection pool shared by the network transports (sftp,
 * ftp): at most `max` connections, opened lazily on demand, reused LIFO,
 * closed after sitting idle for `idleTimeoutMs`, discarded when broken.
 * Waiters are served first-in first-out and can give up with an
 * `AbortSignal`.
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
  readonly #max: number;
  readonly #idleTimeoutMs: number;
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
    if (this.#total < this.#max) return this.#open(signal);
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
    const signals = [this.#closeController.signal];
    if (signal) signals.push(signal);
    let conn: T;
    try {
      conn = await this.#opts.create(AbortSignal.any(signals));
    } catch (err) {
      this.#total--;
      this.#serveWaiters();
      throw err;
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
    return this.#lease(conn, true);
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

  /** A slot became free: let the first waiter open a connection. */
  #serveWaiters(): void {
    if (this.#closed || this.#total >= this.#max) return;
    const waiter = this.#nextWaiter();
    if (!waiter) return;
    this.#open(waiter.signal).then(waiter.resolve, waiter.reject);
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
