/** The retry policy: per-file backoff and the server pause. */
import { nextAttempt, Pacer } from "../../src/pipeline/retry.ts";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { CREATED, DELETED, type FileEvent } from "../../src/store/events.ts";
import { NEVER, Store } from "../../src/store/store.ts";
import { assert, assertEquals } from "../_assert.ts";

const S = { initialMs: 1000, maxMs: 8000, failAfter: 4 };
const mid = () => 0.5; // jitter factor 1.0

Deno.test("nextAttempt() doubles the delay up to the maximum and fails after the set attempts", () => {
  const delays = [1, 2, 3, 4, 5].map((a) => nextAttempt("retry", a, S, 0, mid));
  assertEquals(delays.map((d) => d.delayMs), [1000, 2000, 4000, 8000, 8000]);
  assertEquals(delays.map((d) => d.failed), [false, false, false, true, true]);
  // Jitter stays within ±20 %.
  assertEquals(nextAttempt("retry", 1, S, 0, () => 0).delayMs, 800);
  assertEquals(nextAttempt("retry", 1, S, 0, () => 0.999999).delayMs, 1200);
});

Deno.test("nextAttempt() of a fatal error fails at once and waits for a fix, not a timer", () => {
  const n = nextAttempt("fatal", 1, S, 5000, mid);
  assert(n.failed);
  assertEquals(5000 + n.delayMs, NEVER);
});

Deno.test("Pacer pauses a server once for parallel failures, doubles, and reports the recovery", () => {
  const p = new Pacer({ initialMs: 100, maxMs: 300 }, mid);
  assertEquals(p.succeed(), false, "healthy: nothing to report");
  assertEquals(p.fail(0), 100);
  assert(p.blocked(50));
  // A transfer that was running fails too: same pause, not a longer one.
  assertEquals(p.fail(50), undefined);
  assertEquals(p.blockedUntil, 100);
  assertEquals(p.fail(100), 200);
  assertEquals(p.fail(300), 300);
  assertEquals(p.fail(600), 300, "capped at the maximum");
  assert(!p.blocked(900));
  assertEquals(p.succeed(), true, "the first success after failures is a recovery");
  assertEquals(p.succeed(), false);
  assertEquals(p.fail(1000), 100, "the pause starts over after a recovery");
});

Deno.test("Store.retryAfterFix() re-queues failed and erroring jobs, not deletes delayed on purpose", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fc-retry-"));
  const store = new Store(dir);
  try {
    const change = (file: string, event: FileEvent, server = "cdn") => ({
      input_file: file,
      source: "s",
      server,
      dest: "",
      event,
    });
    store.enqueue([
      change("/s/a", CREATED),
      change("/s/b", CREATED),
      change("/s/c", CREATED, "other"),
    ], 0);
    store.enqueue([change("/s/gone", DELETED)], 0, 0, 60_000);
    const [a, b] = store.pick("cdn", 2, 0);
    const [c] = store.pick("other", 1, 0);
    store.fail(a!, "fatal", "access denied", NEVER, 5);
    store.fail(b!, "retry", "timeout", 50_000, 5);
    store.fail(c!, "fatal", "access denied", NEVER, 5);
    // One server: only its jobs.
    assertEquals(store.retryAfterFix(1000, "cdn"), 2);
    const ready = store.pick("cdn", 10, 1000).map((j) => j.input_file).sort();
    assertEquals(ready, ["/s/a", "/s/b"]);
    assertEquals(store.failedJobs().map((j) => j.input_file), ["/s/c"]);
    // Everything: the failed job of the other server, not the delayed delete.
    assertEquals(store.retryAfterFix(1000), 1);
    assertEquals(store.nextReadyAt(), 1000);
    assertEquals(store.pick("other", 10, 1000).length, 1);
    assertEquals(store.pick("cdn", 10, 59_000).length, 0, "the delete keeps its delay");
  } finally {
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
