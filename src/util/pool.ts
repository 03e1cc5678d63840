/**
 * Bounded concurrency over a list.
 *
 * @module
 */

/**
 * Runs `fn` over `items` with at most `limit` calls in flight (a few
 * workers, not one promise per item) and returns the results in order.
 * Stops taking new items at the first error and rethrows it.
 *
 * @example
 * ```ts
 * import { mapLimit } from "./pool.ts";
 * const sizes = await mapLimit(["a", "bb"], 4, async (s) => s.length); // [1, 2]
 * ```
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  let failed = false;
  async function worker(): Promise<void> {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i]!, i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  }
  const workers = Array.from(
    { length: Math.max(1, Math.min(limit, items.length)) },
    () => worker(),
  );
  const settled = await Promise.allSettled(workers);
  const bad = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (bad) throw bad.reason;
  return results;
}
