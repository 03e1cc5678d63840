/**
 * The scheduler's picks on a node whose jobs start in an order a hook
 * gives (`SchedulerHooks.preferred`: a fleet node starts the jobs whose
 * files are claimed already): a pump with nothing it may pick opens no
 * transaction, and a pump asked for with `pumpSoon` picks in the record
 * transaction of its tick (one commit records and picks), so the answers
 * of a claim start their jobs without a commit of their own.
 *
 * @module
 */
import { setImmediate } from "node:timers";
import { loadConfig } from "../../mod.ts";
import { Scheduler } from "../../src/pipeline/scheduler.ts";
import { Servers } from "../../src/pipeline/servers.ts";
import { logger } from "../../src/log.ts";
import { CREATED } from "../../src/store/events.ts";
import { Store } from "../../src/store/store.ts";
import type { Job } from "../../src/store/types.ts";
import { assertEquals } from "../_assert.ts";
import { testContext } from "../_context.ts";
import { localConfig, workspace } from "../_harness.ts";

/** Lets the callbacks of this tick and the next run. */
const nextTick = () => new Promise<void>((r) => setImmediate(r));

/** A scheduler on a real store with 10 queued jobs; `preferred` answers from `offers`. */
async function withScheduler(
  fn: (t: {
    scheduler: Scheduler;
    store: Store;
    /** Outermost transactions begun so far. */
    txs: () => number;
    /** The ids of the jobs started, in order. */
    started: number[];
    /** What `preferred` answers next (one offer per call; then nothing, more coming). */
    offers: { ids: number[]; wait: boolean }[];
  }) => Promise<void>,
) {
  const ws = workspace("fc-scheduler-pick-");
  localConfig(ws);
  const config = loadConfig(ws.config);
  const store = new Store(ws.data);
  const log = logger("test");
  const { ctx, abort } = testContext(config, store, ws, log);
  let scheduler: Scheduler | undefined;
  try {
    store.tx(() =>
      store.enqueue(
        Array.from({ length: 10 }, (_, i) => ({
          input_file: `${ws.src}/f${i}`,
          source: "site",
          server: "local",
          dest: "",
          event: CREATED,
        })),
        Date.now() - 1000,
      )
    );
    let txs = 0;
    const tx = store.tx.bind(store);
    store.tx = <T>(f: () => T): T => {
      if (!store.db.isTransaction) txs++;
      return tx(f);
    };
    const servers = new Servers(ctx);
    for (const s of servers.values()) s.gc = "done";
    const started: number[] = [];
    const offers: { ids: number[]; wait: boolean }[] = [];
    scheduler = new Scheduler(ctx, servers, {
      runJob: (_s, job: Job) => {
        started.push(job.id);
        // Never ends within the test: its slot stays taken, no pump follows its end.
        return new Promise<void>(() => {});
      },
      claim: () => {},
      unclaim: () => {},
      collectGarbage: () => Promise.resolve(),
      recovered: () => {},
      fatal: (e) => {
        throw e;
      },
      preferred: () => offers.shift() ?? { ids: [], wait: true },
    });
    await fn({ scheduler, store, txs: () => txs, started, offers });
  } finally {
    scheduler?.stopTimers();
    // A flush a failed check left scheduled runs before the store closes.
    await nextTick();
    abort.abort();
    store.close();
    ws.cleanup();
  }
}

Deno.test("scheduler: a pump with nothing it may pick (the answers on their way) opens no transaction", async () => {
  await withScheduler(async ({ scheduler, txs, started, offers }) => {
    scheduler.pump();
    scheduler.pump();
    await nextTick();
    assertEquals(txs(), 0);
    assertEquals(started, []);
    // Answers came in: their jobs start first, picked in one transaction; no others (more come).
    offers.push({ ids: [4, 2], wait: true });
    scheduler.pump();
    assertEquals(started, [4, 2]);
    assertEquals(txs(), 1);
  });
});

Deno.test("scheduler: pumpSoon() picks in the record transaction of its tick, not in one of its own", async () => {
  await withScheduler(async ({ scheduler, store, txs, started, offers }) => {
    offers.push({ ids: [3, 1, 5], wait: true });
    const recorded = scheduler.batch(() => store.setRuntime("recorded", 1));
    scheduler.pumpSoon();
    scheduler.pumpSoon();
    assertEquals(started, []);
    await recorded;
    await nextTick();
    assertEquals(started, [3, 1, 5]);
    assertEquals(store.getRuntime<number>("recorded"), 1);
    // The record and the pick: one commit.
    assertEquals(txs(), 1);
    // With nothing to record, it pumps on its own in the next tick.
    offers.push({ ids: [7], wait: true });
    scheduler.pumpSoon();
    await nextTick();
    assertEquals(started, [3, 1, 5, 7]);
    assertEquals(txs(), 2);
  });
});
