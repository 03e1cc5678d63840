/**
 * Jobs picked ahead of free slots (a local destination picks several per
 * slot, so one commit picks and records many small copies) never outlive a
 * stop: the jobs that had not started go back to the queue with the
 * intents their pick wrote dropped, so the next run has no more leftovers
 * to clean up than the transfers the stop interrupted, and finishes the sync.
 *
 * @module
 */
import * as path from "node:path";
import { assert, assertEquals } from "../_assert.ts";
import { cli, localConfig, workspace, write } from "../_harness.ts";
import { start } from "../reliability/_util.ts";
import { count, files } from "./_pick.ts";

Deno.test("pick ahead: a stop during an initial local sync leaves only the running jobs' intents; the next run finishes", async () => {
  const ws = workspace("fc-pick-ahead-");
  try {
    // Files above the size copied synchronously: each copy waits for I/O, so jobs picked
    // ahead are still waiting for a slot when the stop comes.
    const body = "x".repeat(300 * 1024);
    for (let i = 0; i < 300; i++) write(path.join(ws.src, `d${i % 5}`, `f${i}.txt`), body + i);
    localConfig(ws, { settings: { defaultMaxConnections: "2" } });
    const d = start(["sync", "--config", ws.config]);
    try {
      await d.waitFor(/uploaded .*\n(.*\n){20}/, 120_000);
    } finally {
      assertEquals(await d.stop(), 0, d.log().slice(-3000));
    }
    const done = files(ws.dst).length;
    assert(done < 300, `the stop came after the sync ended (${done} files): nothing was tested`);
    // At most the 2 transfers in flight may have left an intent (their outcome unrecorded);
    // the jobs picked ahead (up to 14 more) must not.
    const intents = count(ws.data, "SELECT COUNT(*) AS n FROM intents");
    assert(intents <= 2, `${intents} intents left after the stop`);
    assertEquals(count(ws.data, "SELECT COUNT(*) AS n FROM queue WHERE running = 1"), 0);

    const next = await cli(["sync", "--once", "--config", ws.config]);
    assertEquals(next.code, 0, next.stderr);
    // Only what the stop aborted mid-transfer (at most the 2 in flight) is cleaned up.
    const leftovers = next.stderr.split("\n").filter((l) => l.includes("removed leftover"));
    assert(leftovers.length <= 2, leftovers.join("\n"));
    assertEquals(files(ws.dst), files(ws.src));
  } finally {
    ws.cleanup();
  }
});
