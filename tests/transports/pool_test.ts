import { Pool, type PoolOptions } from "../../src/transports/pool.ts";
import { assert, assertEquals, assertRejects } from "../_assert.ts";

interface Fake {
  id: number;
  alive: boolean;
  destroyed: boolean;
}

function fakes(overrides: Partial<PoolOptions<Fake>> = {}) {
  const created: Fake[] = [];
  let failNext = 0;
  const pool = new Pool<Fake>({
    max: 2,
    create: () => {
      if (failNext > 0) {
        failNext--;
        return Promise.reject(new Error("connection refused"));
      }
      const f = { id: created.length + 1, alive: true, destroyed: false };
      created.push(f);
      return Promise.resolve(f);
    },
    destroy: (f) => {
      f.destroyed = true;
      f.alive = false;
    },
    isAlive: (f) => f.alive,
    ...overrides,
  });
  return { pool, created, failNextCreates: (n: number) => (failNext = n) };
}

function tick(ms = 0): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

Deno.test("Pool connects lazily and reuses a released connection", async () => {
  const { pool, created } = fakes();
  assertEquals(created.length, 0);
  const a = await pool.acquire();
  assert(a.fresh);
  a.release();
  const b = await pool.acquire();
  assert(!b.fresh, "second lease should reuse the idle connection");
  assertEquals(b.conn, a.conn);
  assertEquals(created.length, 1);
  b.release();
  await pool.close();
});

Deno.test("Pool never opens more than max and serves waiters in order", async () => {
  const { pool, created } = fakes();
  const a = await pool.acquire();
  const b = await pool.acquire();
  const order: number[] = [];
  const w1 = pool.acquire().then((l) => {
    order.push(1);
    return l;
  });
  const w2 = pool.acquire().then((l) => {
    order.push(2);
    return l;
  });
  await tick();
  assertEquals(created.length, 2);
  assertEquals(pool.stats, { total: 2, idle: 0, busy: 2, waiting: 2 });
  a.release();
  const l1 = await w1;
  assertEquals(l1.conn, a.conn);
  b.release();
  const l2 = await w2;
  assertEquals(l2.conn, b.conn);
  assertEquals(order, [1, 2]);
  assertEquals(created.length, 2);
  l1.release();
  l2.release();
  await pool.close();
});

Deno.test("Pool.discard() closes the connection and lets a waiter open a new one", async () => {
  const { pool, created } = fakes({ max: 1 });
  const a = await pool.acquire();
  const waiting = pool.acquire();
  a.discard();
  const b = await waiting;
  assert(a.conn.destroyed);
  assert(b.fresh);
  assertEquals(created.length, 2);
  b.release();
  await pool.close();
});

Deno.test("Pool skips and closes dead idle connections", async () => {
  const { pool, created } = fakes();
  const a = await pool.acquire();
  a.release();
  a.conn.alive = false; // the server hung up while it was idle
  const b = await pool.acquire();
  assert(b.conn !== a.conn);
  assert(a.conn.destroyed);
  assertEquals(created.length, 2);
  assertEquals(pool.stats.total, 1);
  b.release();
  await pool.close();
});

Deno.test("Pool closes connections idle longer than idleTimeoutMs", async () => {
  const { pool } = fakes({ idleTimeoutMs: 30 });
  const a = await pool.acquire();
  a.release();
  assertEquals(pool.stats.idle, 1);
  await tick(80);
  assert(a.conn.destroyed, "idle connection should be closed");
  assertEquals(pool.stats, { total: 0, idle: 0, busy: 0, waiting: 0 });
  const b = await pool.acquire();
  assert(b.fresh);
  b.release();
  await pool.close();
});

Deno.test("Pool.acquire() honours an AbortSignal while waiting", async () => {
  const { pool } = fakes({ max: 1 });
  const a = await pool.acquire();
  const ac = new AbortController();
  const waiting = pool.acquire(ac.signal);
  await tick();
  assertEquals(pool.stats.waiting, 1);
  ac.abort(new Error("shutting down"));
  await assertRejects(() => waiting, Error, "shutting down");
  assertEquals(pool.stats.waiting, 0);
  // The released connection goes to the idle list, not to the aborted waiter.
  a.release();
  assertEquals(pool.stats.idle, 1);
  await assertRejects(() => pool.acquire(AbortSignal.abort(new Error("early"))), Error, "early");
  await pool.close();
});

Deno.test("Pool passes the caller's signal to create and keeps a late connection", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let seen: AbortSignal | undefined;
  const pool = new Pool<{ id: number }>({
    max: 1,
    create: async (signal) => {
      seen = signal;
      await gate; // a connection that ignores the signal
      return { id: 1 };
    },
    destroy: () => {},
  });
  const ac = new AbortController();
  const p = pool.acquire(ac.signal);
  await tick();
  ac.abort(new Error("gave up"));
  assert(seen?.aborted, "create should see the abort");
  release();
  await assertRejects(() => p, Error, "gave up");
  // The connection that arrived anyway is kept for the next caller.
  assertEquals(pool.stats.idle, 1);
  const l = await pool.acquire();
  assert(!l.fresh);
  l.release();
  await pool.close();
});

Deno.test("Pool frees the slot when create fails and lets waiters try again", async () => {
  const { pool, failNextCreates } = fakes({ max: 1 });
  failNextCreates(1);
  await assertRejects(() => pool.acquire(), Error, "connection refused");
  assertEquals(pool.stats.total, 0);
  const a = await pool.acquire();
  a.release();
  await pool.close();
});

Deno.test("Pool.use() returns healthy connections and discards broken ones", async () => {
  const { pool, created } = fakes({ max: 1 });
  assertEquals(await pool.use((c) => Promise.resolve(c.id)), 1);
  // A request-level error keeps the connection.
  await assertRejects(
    () =>
      pool.use(() => Promise.reject(new Error("no such file")), {
        isBroken: (e) => !(e as Error).message.includes("no such file"),
      }),
    Error,
    "no such file",
  );
  assertEquals(pool.stats.idle, 1);
  assert(!created[0]!.destroyed);
  // Anything else discards it.
  await assertRejects(() => pool.use(() => Promise.reject(new Error("socket closed"))));
  assert(created[0]!.destroyed);
  assertEquals(pool.stats.total, 0);
  await pool.close();
});

Deno.test("Pool.use() with retryStale retries once on a fresh connection", async () => {
  const { pool, created } = fakes({ max: 2 });
  // Two idle connections that the server has silently dropped.
  const a = await pool.acquire();
  const b = await pool.acquire();
  a.release();
  b.release();
  let calls = 0;
  const result = await pool.use((c) => {
    calls++;
    if (c.id <= 2) return Promise.reject(new Error("connection reset"));
    return Promise.resolve(`ok on #${c.id}`);
  }, { retryStale: true });
  assertEquals(result, "ok on #3");
  assertEquals(calls, 2);
  assert(created[0]!.destroyed && created[1]!.destroyed, "stale idle connections dropped");
  // A fresh connection that fails is not retried.
  await assertRejects(
    () => pool.use(() => Promise.reject(new Error("refused")), { retryStale: true }),
    Error,
    "refused",
  );
  await pool.close();
});

Deno.test("Pool.close() closes everything, rejects waiters and is idempotent", async () => {
  const { pool, created } = fakes({ max: 1 });
  const a = await pool.acquire();
  const waiting = pool.acquire();
  await pool.close();
  await assertRejects(() => waiting, Error, "closed");
  assert(created[0]!.destroyed, "busy connection closed");
  a.release(); // late release is harmless
  await pool.close();
  await assertRejects(() => pool.acquire(), Error, "closed");
});

Deno.test("Pool rejects a size below 1", () => {
  let threw = false;
  try {
    new Pool({ max: 0, create: () => Promise.resolve(1), destroy: () => {} });
  } catch (e) {
    threw = e instanceof RangeError;
  }
  assert(threw);
});

Deno.test("Pool dials once until a connection opens, and holds a refused login", async () => {
  class AuthError extends Error {}
  let dials = 0;
  let opened = 0;
  let refuse = true;
  const pool = new Pool<number>({
    max: 4,
    create: async () => {
      dials++;
      await tick(10);
      if (refuse) throw new AuthError("wrong password");
      return ++opened;
    },
    destroy: () => {},
    holdsFailure: (err) => err instanceof AuthError,
    holdMs: 100,
  });
  // Twenty callers at once: one dial, every caller gets the refusal.
  const all = await Promise.allSettled(
    Array.from({ length: 20 }, () => pool.use(() => Promise.resolve(1))),
  );
  assertEquals(dials, 1);
  assert(all.every((r) => r.status === "rejected" && r.reason instanceof AuthError));
  // While the hold lasts, no dial at all.
  await assertRejects(() => pool.acquire(), AuthError);
  assertEquals(dials, 1);
  assert(pool.heldFailure instanceof AuthError);
  // After it expires, the next caller dials again.
  await tick(120);
  refuse = false;
  const ids = await Promise.all(Array.from({ length: 4 }, () =>
    pool.use(async (c) => {
      await tick(20);
      return c;
    })));
  assertEquals(dials, 5);
  assertEquals(new Set(ids).size, 4);
  await pool.close();
});

Deno.test("Pool shrinks to the connections a server allows and tells once", async () => {
  class TooMany extends Error {}
  let open = 0;
  const shrinks: number[] = [];
  const pool = new Pool<number>({
    max: 6,
    create: async () => {
      await tick(5);
      if (open >= 2) throw new TooMany("421 2 users (the maximum) are already logged in");
      return ++open;
    },
    destroy: () => {
      open--;
    },
    isTooMany: (err) => err instanceof TooMany,
    onShrink: (size) => shrinks.push(size),
  });
  const done = await Promise.all(Array.from({ length: 12 }, (_, i) =>
    pool.use(async () => {
      await tick(10);
      return i;
    })));
  assertEquals(done.length, 12);
  assertEquals(pool.size, 2);
  assertEquals(shrinks, [2]);
  await pool.close();
});

Deno.test("Pool counts refusals of dials under way at once as one backoff step", async () => {
  class AuthError extends Error {}
  let refuse = false;
  let dials = 0;
  const conns: { alive: boolean }[] = [];
  const pool = new Pool<{ alive: boolean }>({
    max: 3,
    create: async () => {
      dials++;
      await tick(5);
      if (refuse) throw new AuthError("password changed");
      const c = { alive: true };
      conns.push(c);
      return c;
    },
    destroy: (c) => {
      c.alive = false;
    },
    isAlive: (c) => c.alive,
    holdsFailure: (err) => err instanceof AuthError,
    holdMs: 100,
  });
  // Three connections open, then the server drops them and changes the password.
  await Promise.all([1, 2, 3].map(() => pool.use(() => tick(10))));
  for (const c of conns) c.alive = false;
  refuse = true;
  const failed = await Promise.allSettled([1, 2, 3].map(() => pool.use(() => tick(1))));
  assert(failed.every((r) => r.status === "rejected" && r.reason instanceof AuthError));
  const before = dials;
  // One backoff of 100 ms, not three doublings (400 ms).
  await tick(150);
  await assertRejects(() => pool.acquire(), AuthError);
  assertEquals(dials, before + 1);
  await pool.close();
});
