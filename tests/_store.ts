/**
 * A local store in a folder of its own for one test.
 *
 * @module
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Store } from "../src/store/store.ts";

/**
 * Runs `fn` with a new store (its database in `<root>/data`) and its
 * temporary folder `root`; the store is closed and the folder removed after,
 * whatever `fn` did.
 */
export async function withTempStore<T>(
  prefix: string,
  fn: (store: Store, root: string) => T | Promise<T>,
): Promise<T> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const store = new Store(path.join(root, "data"));
  try {
    return await fn(store, root);
  } finally {
    store.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
}
