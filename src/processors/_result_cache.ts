/**
 * A bounded on-disk cache of pure processor results: what a minifier or an
 * image optimiser made of some content, keyed by a hash of the content, the
 * processor, its options and the engine. A file synced again with the same
 * content (a restart, a touch, a second server, a copy elsewhere in the
 * tree) then skips the engine.
 *
 * Contract:
 * - Only processors whose output depends on nothing but the key may use it
 *   (not the CSS URL updater, whose output depends on looked-up URLs).
 * - An entry holds a one-byte tag and the output; tag 0 means "the engine
 *   found nothing better" (no output bytes).
 * - Writes are atomic (temporary name, then rename); a damaged or unreadable
 *   entry is a miss. Errors of the cache never fail a file.
 * - The directory stays under `maxBytes` (default 256 MiB): past it, the
 *   least recently used entries are removed down to 3/4 of the limit.
 *
 * @module
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs/promises";
import * as path from "node:path";

/** A cached result: `undefined` is a miss. */
export interface CachedResult {
  /** Processor-defined tag (0: nothing better found). */
  tag: number;
  bytes: Uint8Array;
}

/** See the module documentation. */
export class ResultCache {
  readonly dir: string;
  readonly maxBytes: number;
  #size: Promise<number> | undefined;
  #pruning = false;

  constructor(dir: string, options: { maxBytes?: number } = {}) {
    this.dir = dir;
    this.maxBytes = options.maxBytes ?? 256 * 1024 * 1024;
  }

  /** The key of `parts` (content bytes and strings naming the processor, options, engine). */
  static key(parts: readonly (string | Uint8Array)[]): string {
    const h = createHash("sha256");
    for (const p of parts) {
      const b = typeof p === "string" ? new TextEncoder().encode(p) : p;
      h.update(String(b.length) + ":");
      h.update(b);
    }
    return h.digest("hex");
  }

  #file(key: string): string {
    return path.join(this.dir, key.slice(0, 2), key);
  }

  /** The entry for `key`, or undefined. */
  async get(key: string): Promise<CachedResult | undefined> {
    const file = this.#file(key);
    try {
      // `Deno.readFile`: one operation (`node:fs`'s readFile is four, each with main-thread work).
      const b = await Deno.readFile(file);
      if (b.length < 1) return undefined;
      const now = new Date();
      Deno.utime(file, now, now).catch(() => {});
      return { tag: b[0]!, bytes: new Uint8Array(b.buffer, b.byteOffset + 1, b.length - 1) };
    } catch {
      return undefined;
    }
  }

  /** Stores an entry (best effort). */
  async put(key: string, tag: number, bytes: Uint8Array = new Uint8Array()): Promise<void> {
    const file = this.#file(key);
    const tmp = `${file}.${crypto.randomUUID().slice(0, 8)}.tmp`;
    try {
      const dir = path.dirname(file);
      const data = new Uint8Array(bytes.length + 1);
      data[0] = tag;
      data.set(bytes, 1);
      // The directory is made only when the write finds it missing: a recursive mkdir per
      // entry was most of the cost of a put during an initial sync.
      try {
        await Deno.writeFile(tmp, data);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
        await Deno.mkdir(dir, { recursive: true });
        await Deno.writeFile(tmp, data);
      }
      await Deno.rename(tmp, file);
      const size = (await this.#currentSize()) + data.length;
      this.#size = Promise.resolve(size);
      if (size > this.maxBytes) await this.#prune();
    } catch {
      await fs.rm(tmp, { force: true }).catch(() => {});
    }
  }

  #currentSize(): Promise<number> {
    this.#size ??= this.#entries().then((es) => es.reduce((n, e) => n + e.size, 0));
    return this.#size;
  }

  async #entries(): Promise<{ file: string; size: number; used: number }[]> {
    const out: { file: string; size: number; used: number }[] = [];
    let dirs: string[];
    try {
      dirs = await fs.readdir(this.dir);
    } catch {
      return out;
    }
    for (const d of dirs) {
      let names: string[];
      try {
        names = await fs.readdir(path.join(this.dir, d));
      } catch {
        continue;
      }
      for (const n of names) {
        const file = path.join(this.dir, d, n);
        try {
          const st = await fs.stat(file);
          out.push({ file, size: st.size, used: st.mtimeMs });
        } catch {
          // Removed meanwhile.
        }
      }
    }
    return out;
  }

  /** Removes the least recently used entries down to 3/4 of the limit. */
  async #prune(): Promise<void> {
    if (this.#pruning) return;
    this.#pruning = true;
    try {
      const entries = (await this.#entries()).sort((a, b) => a.used - b.used);
      let size = entries.reduce((n, e) => n + e.size, 0);
      for (const e of entries) {
        if (size <= this.maxBytes * 0.75) break;
        await fs.rm(e.file, { force: true }).catch(() => {});
        size -= e.size;
      }
      this.#size = Promise.resolve(size);
    } finally {
      this.#pruning = false;
    }
  }
}

const caches = new Map<string, ResultCache>();

/** The process-wide cache for `dir`. */
export function resultCache(dir: string): ResultCache {
  let c = caches.get(dir);
  if (!c) {
    c = new ResultCache(dir);
    caches.set(dir, c);
  }
  return c;
}
