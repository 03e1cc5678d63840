/**
 * The pipeline context of a test that drives pipeline parts (a scheduler, a
 * claimer) on a real store, without a daemon.
 *
 * @module
 */
import type { Config } from "../src/config/types.ts";
import { type Logger, logger } from "../src/log.ts";
import type { PipelineContext } from "../src/pipeline/context.ts";
import { EventBus } from "../src/pipeline/events.ts";
import type { Store } from "../src/store/store.ts";
import type { Workspace } from "./_harness.ts";

/** A context on `store` for workspace `ws`; `abort` stops what runs on it. */
export function testContext(
  config: Config,
  store: Store,
  ws: Workspace,
  log: Logger = logger("test"),
): { ctx: PipelineContext; abort: AbortController } {
  const abort = new AbortController();
  const ctx: PipelineContext = {
    config,
    options: {},
    store,
    dataDir: ws.data,
    workDir: ws.root,
    signal: abort.signal,
    stopping: false,
    bus: new EventBus(log),
    summary: { synced: 0, deleted: 0, failed: 0, skipped: 0 },
    log,
  };
  return { ctx, abort };
}
