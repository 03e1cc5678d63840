/**
 * A process that claims keys in a shared store and prints what it got, for
 * the cross-process claim test: `deno run -A shared_claimer.ts URL NODE COUNT`
 * claims keys `/k/0` … `/k/COUNT-1` one batch of 10 at a time and prints one
 * JSON line: the indices it got as "mine".
 *
 * @module
 */
import { openSharedStore } from "../../src/store/shared/open.ts";

const [url, node, count] = Deno.args;
const store = await openSharedStore(url!, node!);
await store.migrate();
const mine: number[] = [];
const n = Number(count);
for (let i = 0; i < n; i += 10) {
  const items = [];
  for (let j = i; j < Math.min(n, i + 10); j++) {
    items.push({ key: { input_file: `/k/${j}`, server: "cdn", dest: "" }, fingerprint: "f" });
  }
  const claims = await store.claimMany(items, 1_000, 600_000);
  claims.forEach((c, j) => c.kind === "mine" && mine.push(i + j));
}
await store.close();
Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(mine) + "\n"));
