import { Aggregator, type Clock, type ReadyPath } from "../../src/watch/aggregator.ts";
import { assertEquals } from "../_assert.ts";

/** A fake clock: timers fire only when the test advances time. */
class FakeClock implements Clock {
  t = 0;
  #timers = new Map<number, { at: number; fn: () => void }>();
  #next = 1;
  now() {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number) {
    const id = this.#next++;
    this.#timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(id: number) {
    this.#timers.delete(id);
  }
  advance(ms: number) {
    const end = this.t + ms;
    for (;;) {
      const due = [...this.#timers].filter(([, x]) =>
        x.at <= end
      ).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.#timers.delete(due[0]);
      this.t = Math.max(this.t, due[1].at);
      due[1].fn();
    }
    this.t = end;
  }
}

function setup(opts: { dirLimit?: number; totalLimit?: number } = {}) {
  const clock = new FakeClock();
  const flushed: { paths: ReadyPath[]; full: boolean; at: number }[] = [];
  const agg = new Aggregator({
    settleDelay: 100,
    maxDelay: 1000,
    quickDelay: 5,
    clock,
    ...opts,
    flush: (paths, full) => flushed.push({ paths, full, at: clock.t }),
  });
  return { clock, agg, flushed };
}

Deno.test("Aggregator flushes shortly after a close-after-write", () => {
  const { clock, agg, flushed } = setup();
  agg.add("/s/a", "create");
  agg.add("/s/a", "modify");
  clock.advance(2);
  agg.add("/s/a", "close");
  clock.advance(4);
  assertEquals(flushed.length, 0);
  clock.advance(2);
  assertEquals(flushed, [{ paths: [{ path: "/s/a", written: true }], full: false, at: 7 }]);
});

Deno.test("Aggregator waits for the settle delay without a close-after-write", () => {
  const { clock, agg, flushed } = setup();
  agg.add("/s/a", "modify");
  clock.advance(50);
  agg.add("/s/a", "modify");
  clock.advance(99);
  assertEquals(flushed.length, 0);
  clock.advance(1);
  assertEquals(flushed.length, 1);
  assertEquals(flushed[0]!.at, 150);
});

Deno.test("Aggregator syncs a file that keeps changing after the maximum delay", () => {
  const { clock, agg, flushed } = setup();
  for (let t = 0; t < 1000; t += 50) {
    agg.add("/s/log", "modify");
    clock.advance(50);
  }
  assertEquals(flushed.length, 1);
  assertEquals(flushed[0]!.at, 1000);
});

Deno.test("Aggregator collapses a busy directory into one directory scan", () => {
  const { clock, agg, flushed } = setup({ dirLimit: 3 });
  for (let i = 0; i < 10; i++) agg.add(`/s/d/f${i}`, "create");
  agg.add("/s/d/sub/x", "create");
  agg.add("/s/other", "close");
  assertEquals(agg.pending, 2);
  clock.advance(200);
  const paths = flushed.flatMap((f) => f.paths.map((p) => p.path)).sort();
  assertEquals(paths, ["/s/d", "/s/other"]);
});

Deno.test("Aggregator asks for a full scan past the total limit and on rescan", () => {
  const { clock, agg, flushed } = setup({ totalLimit: 5, dirLimit: 100 });
  for (let i = 0; i < 6; i++) agg.add(`/s/d${i}/f`, "create");
  clock.advance(200);
  assertEquals(flushed, [{ paths: [], full: true, at: 100 }]);
  agg.rescan();
  clock.advance(10);
  assertEquals(flushed.length, 2);
  assertEquals(flushed[1]!.full, true);
});

Deno.test("Aggregator marks removes as not written and flushes them quickly", () => {
  const { clock, agg, flushed } = setup();
  agg.add("/s/gone", "remove");
  clock.advance(5);
  assertEquals(flushed, [{ paths: [{ path: "/s/gone", written: false }], full: false, at: 5 }]);
});

Deno.test("Aggregator.close() flushes what is pending", () => {
  const { agg, flushed } = setup();
  agg.add("/s/a", "modify");
  agg.close();
  assertEquals(flushed.length, 1);
  agg.add("/s/b", "modify");
  assertEquals(agg.pending, 0);
});

Deno.test("Aggregator.removals counts events that may remove a path and requests for a full scan, also after a collapse", () => {
  const { agg } = setup({ dirLimit: 2, totalLimit: 3 });
  assertEquals(agg.removals, 0);
  agg.add("/s/a", "create");
  agg.add("/s/a", "modify");
  agg.add("/s/a", "close");
  assertEquals(agg.removals, 0, "writes remove nothing");
  agg.add("/s/a", "remove");
  agg.add("/s/b", "rename");
  agg.add("/s/c", "other");
  assertEquals(agg.removals, 3);
  // Past the limits events fold into a directory or a full scan: they still count.
  for (const p of ["/s/d/1", "/s/d/2", "/s/d/3", "/s/e"]) agg.add(p, "remove");
  assertEquals(agg.removals, 7);
  agg.rescan();
  assertEquals(agg.removals, 8);
});
