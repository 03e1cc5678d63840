/**
 * A throwaway source tree with its own store, the start of every scanner rig.
 *
 * @module
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Source } from "../../src/config/types.ts";
import { Store } from "../../src/store/store.ts";

/** A temp directory holding `src/` (the source "site") and `data/` (its store). */
export interface TempSource {
  root: string;
  src: string;
  store: Store;
  source: Source;
}

/** Creates a {@linkcode TempSource} under a new temp directory named `prefix…`. */
export function tempSource(prefix: string): TempSource {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), prefix)));
  const src = path.join(root, "src");
  fs.mkdirSync(src);
  const store = new Store(path.join(root, "data"));
  const source: Source = {
    name: "site",
    scanPath: src,
    configuredPath: src,
    watch: "auto",
    line: 1,
  };
  return { root, src, store, source };
}
