/**
 * How far a fleet node claims ahead: the next batch is claimed before the
 * scheduler takes the last answers in hand (`claimMore`), so its next pick
 * finds answers and never waits for a round trip (nor picks in a
 * transaction of its own when they come).
 *
 * @module
 */
import * as path from "node:path";
import { loadConfig } from "../../mod.ts";
import { AHEAD_LOW, claimMore } from "../../src/pipeline/fleet_ahead.ts";
import { FleetClaimer } from "../../src/pipeline/fleet_claimer.ts";
import { FleetLeases } from "../../src/pipeline/fleet_lease.ts";
import { logger } from "../../src/log.ts";
import { CREATED } from "../../src/store/events.ts";
import { FleetLocal } from "../../src/store/fleet_local.ts";
import { openSharedStore } from "../../src/store/shared/open.ts";
import { Store } from "../../src/store/store.ts";
import { assert, assertEquals } from "../_assert.ts";
import { testContext } from "../_context.ts";
import { localConfig, workspace, write } from "../_harness.ts";

Deno.test("claimMore(): while fewer than one pick and AHEAD_LOW more answers are left", () => {
  assert(claimMore(AHEAD_LOW - 1, 0));
  assert(!claimMore(AHEAD_LOW, 0));
  assert(claimMore(AHEAD_LOW + 63, 64));
  assert(!claimMore(AHEAD_LOW + 64, 64));
});

Deno.test("FleetClaimer: the answers of the next pick are in before the scheduler takes the ones in hand", async () => {
  const ws = workspace("fc-claim-lead-");
  localConfig(ws);
  const files = 400;
  for (let i = 0; i < files; i++) write(path.join(ws.src, `d${i % 4}`, `f${i}.txt`), `x${i}`);
  const config = loadConfig(ws.config);
  const store = new Store(ws.data);
  const shared = await openSharedStore(`sqlite:${path.join(ws.root, "shared.db")}`, "n1");
  const log = logger("test");
  const { ctx, abort } = testContext(config, store, ws, log);
  const call = <T>(fn: (s: typeof shared) => Promise<T>) => fn(shared);
  const held = new FleetLeases({ call, leaseMs: () => 60_000, log });
  const claimer = new FleetClaimer({
    ctx,
    store,
    local: new FleetLocal(store, "n1"),
    log,
    call,
    reachable: () => true,
    held,
    look: () => undefined,
    othersHere: () => {},
    route: () => undefined,
  });
  try {
    await shared.migrate();
    store.tx(() =>
      store.enqueue(
        Array.from({ length: files }, (_, i) => ({
          input_file: path.join(ws.src, `d${i % 4}`, `f${i}.txt`),
          source: "site",
          server: "local",
          dest: "",
          event: CREATED,
        })),
        Date.now() - 1000,
      )
    );
    /** Resolves at the next answers (or failure) of a claim batch. */
    const answers = () => new Promise<void>((r) => (claimer.onAnswers = r));
    /** Waits until no claim is in flight (what is planned has its answers). */
    const settled = async () => {
      for (;;) {
        const answered = answers();
        if (!claimer.ready("local", 0).wait) return;
        await answered;
      }
    };
    /**
     * Lets a batch asked for now be planned: its timer (a few ms) was set
     * before this one, whose delay is longer, so it has fired by then.
     */
    const planned = () => new Promise((r) => setTimeout(r, 50));
    // The scheduler takes up to 64 jobs at once (a local copy picks 8 per slot).
    const pick = 64;
    const firstAnswers = answers();
    // Nothing is claimed yet: this asks for the first batch.
    assertEquals(claimer.ready("local", pick).ids, []);
    await firstAnswers;
    await planned();
    await settled();
    const first = claimer.ready("local", pick);
    assertEquals(first.ids.length, pick);
    // Taken right after, as the commit recording the first jobs picks: answered already.
    const second = claimer.ready("local", pick);
    assertEquals(second.ids.length, pick, JSON.stringify(second));
    assertEquals(new Set([...first.ids, ...second.ids]).size, 2 * pick);
    await settled();
  } finally {
    await claimer.close();
    await shared.close();
    abort.abort();
    store.close();
    ws.cleanup();
  }
});
