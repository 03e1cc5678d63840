/**
 * Child process of scenario f's "store alone" (`fleet_store.ts`): a node's
 * round trips to a shared store (PostgreSQL or MariaDB) for `files` files,
 * without the node — a claim of {@linkcode AHEAD_BATCH} files (with the
 * re-read of the keys it took), publishes of {@linkcode UNPUBLISHED_MAX},
 * and a follow of the change feed every 10 claims — with the store of the
 * checkout at `root` (this one, or the `--baseline`). Prints one JSON line:
 * the wall time and the time of each 10,000 files.
 *
 * Usage (the URL holds the password, so it does not go on the command line):
 * `FC_BENCH_STORE_URL=… deno run -A --config ROOT/deno.json fleet_store_run.ts ROOT FILES`
 *
 * @module
 */
import { UNPUBLISHED_MAX } from "../../src/pipeline/fleet_admit.ts";
import { AHEAD_BATCH } from "../../src/pipeline/fleet_ahead.ts";

const [root, filesArg] = Deno.args;
const url = Deno.env.get("FC_BENCH_STORE_URL");
if (!root || !url || !filesArg) {
  throw new Error("usage: FC_BENCH_STORE_URL=… fleet_store_run.ts ROOT FILES");
}
const files = Number(filesArg);
const { openSharedStore } = await import(`${root}/src/store/shared/open.ts`);

/** Files per claim, as a node claims ahead. */
const CLAIM = AHEAD_BATCH;
/** Records per publish, as many as a node's bound on unpublished records lets through. */
const PUBLISH = UNPUBLISHED_MAX;
/** Claims between two follows (a node follows once a second). */
const FOLLOW_EVERY = 10;
/** Files per timed slice. */
const SLICE = 10_000;

const key = (i: number) => ({
  input_file: `/srv/site/d${i % 50}/f${i}.css`,
  server: "cdn",
  dest: "",
});
const record = (i: number) => ({
  ...key(i),
  transported_file_basename: `f${i}.css`,
  url: `https://cdn.example/d${i % 50}/f${i}.css`,
  remote_path: `d${i % 50}/f${i}.css`,
  fingerprint: `120:1700000000000:${i.toString(16).padStart(32, "0")}`,
  node: "n1",
  synced_at: Date.now(),
  source_stat: "120:1700000000000:1700000000000:1",
});

const store = await openSharedStore(url, "n1");
await store.migrate();
let cursor = 0;
const slices: number[] = [];
const t0 = performance.now();
let sliceStart = t0;
for (let from = 0; from < files; from += CLAIM) {
  const batch = Array.from({ length: Math.min(CLAIM, files - from) }, (_, j) => from + j);
  await store.claimMany(
    batch.map((i) => ({ key: key(i), fingerprint: record(i).fingerprint })),
    Date.now(),
    60_000,
  );
  for (let p = 0; p < batch.length; p += PUBLISH) {
    await store.publish(batch.slice(p, p + PUBLISH).map(record));
  }
  if ((from / CLAIM) % FOLLOW_EVERY === FOLLOW_EVERY - 1) {
    for (;;) {
      const changes = await store.changesSince(cursor, 2000);
      if (changes.length === 0) break;
      cursor = changes[changes.length - 1]!.seq;
    }
  }
  const done = from + batch.length;
  if (done % SLICE < CLAIM || done === files) {
    const now = performance.now();
    slices.push(now - sliceStart);
    sliceStart = now;
  }
}
const wallMs = performance.now() - t0;
await store.close();
Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify({ wallMs, slices }) + "\n"));
