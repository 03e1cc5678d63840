import * as fs from "node:fs";
import * as path from "node:path";
import { createHash } from "node:crypto";
import { formatBytes } from "../../src/util/format.ts";
import { md5File } from "../../src/util/hash.ts";
import { mapLimit } from "../../src/util/pool.ts";
import { Semaphore } from "../../src/util/semaphore.ts";
import { isTempName, tempName } from "../../src/util/temp_name.ts";
import { assert, assertEquals } from "../_assert.ts";

Deno.test("md5File() matches a one-shot digest across the read strategies", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    // Below, at and above each threshold (one sync read, one async read, chunks).
    for (const size of [0, 1, 256 * 1024, 256 * 1024 + 1, 4 * 1024 * 1024 + 3]) {
      const bytes = new Uint8Array(size).map((_, i) => (i * 31 + size) & 0xff);
      const p = path.join(dir, `f${size}`);
      fs.writeFileSync(p, bytes);
      const want = createHash("md5").update(bytes).digest("hex");
      assertEquals(await md5File(p), want, `size ${size}`);
      assertEquals(await md5File(p, undefined, size), want, `size ${size} with hint`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

Deno.test("md5File() rejects when the signal is aborted", async () => {
  const c = new AbortController();
  c.abort(new Error("stop"));
  let thrown: unknown;
  await md5File("/nonexistent", c.signal).catch((e) => thrown = e);
  assertEquals((thrown as Error).message, "stop");
});

Deno.test("formatBytes() picks binary units and trims on request", () => {
  assertEquals(formatBytes(0), "0 B");
  assertEquals(formatBytes(1023), "1023 B");
  assertEquals(formatBytes(1536), "1.5 KiB");
  assertEquals(formatBytes(20 * 1024 ** 2), "20.0 MiB");
  assertEquals(formatBytes(5 * 1024 ** 2, { trim: true }), "5 MiB");
  assertEquals(formatBytes(1.25 * 1024 ** 3), "1.25 GiB");
  assertEquals(formatBytes(2 * 1024 ** 4, { trim: true }), "2 TiB");
});

Deno.test("mapLimit() keeps order, bounds concurrency and stops at the first error", async () => {
  let running = 0;
  let peak = 0;
  const out = await mapLimit([5, 1, 4, 2, 3], 2, async (n, i) => {
    running++;
    peak = Math.max(peak, running);
    await new Promise((r) => setTimeout(r, n));
    running--;
    return n * 10 + i;
  });
  assertEquals(out, [50, 11, 42, 23, 34]);
  assertEquals(peak, 2);
  const seen: number[] = [];
  let thrown: unknown;
  await mapLimit([1, 2, 3, 4], 1, async (n) => {
    await Promise.resolve();
    seen.push(n);
    if (n === 2) throw new Error("two");
    return n;
  }).catch((e) => thrown = e);
  assertEquals((thrown as Error).message, "two");
  assertEquals(seen, [1, 2]);
});

Deno.test("Semaphore serves waiters in order and drops aborted ones", async () => {
  const s = new Semaphore(1);
  assert(s.tryAcquire());
  assertEquals(s.free, 0);
  const order: string[] = [];
  const c = new AbortController();
  const a = s.acquire().then(() => order.push("a"));
  const b = s.acquire(c.signal).then(() => order.push("b"), () => order.push("b aborted"));
  const d = s.acquire().then(() => order.push("d"));
  c.abort();
  await b;
  s.release();
  await a;
  s.release();
  await d;
  s.release();
  assertEquals(order, ["b aborted", "a", "d"]);
  assertEquals(s.free, 1);
});

Deno.test("tempName() stays in the directory and is recognised by isTempName()", () => {
  const t = tempName("css/site.css");
  assert(t.startsWith("css/.fctmp-"), t);
  assert(t.endsWith("-site.css"), t);
  assert(isTempName(t.slice(4)));
  assertEquals(tempName("css/site.css"), t);
  assert(!isTempName("site.css"));
  const long = tempName("d/" + "x".repeat(240));
  assert(long.endsWith("-long"), long);
  // The limit is on UTF-8 bytes (at most 200 kept), whatever the count of characters.
  for (const [base, kept] of [["x".repeat(200), true], ["x".repeat(201), false]] as const) {
    assertEquals(tempName(base).endsWith(`-${base}`), kept, `${base.length} ASCII`);
  }
  for (const [base, kept] of [["✓".repeat(66), true], ["✓".repeat(67), false]] as const) {
    assertEquals(tempName(base).endsWith(`-${base}`), kept, `${base.length} × 3 bytes`);
  }
  assert(tempName("é".repeat(100)).endsWith("é".repeat(100)), "200 bytes in 100 characters");
});
