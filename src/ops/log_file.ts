/**
 * A log file rotated by size, like Python's `RotatingFileHandler` (the
 * original's `LOG_FILE`): when the next line would take the file to
 * `maxBytes`, `file.N-1` becomes `file.N` … `file` becomes `file.1`, and a
 * new `file` starts. An empty file is never rotated, nor anything that is not
 * a regular file (`/dev/null`, a pipe).
 *
 * One difference: with `backups` 0 Python never rotates (the file grows
 * without bound); here the file is truncated instead, so its size stays
 * bounded.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";

/** Options for {@linkcode RotatingFile}. */
export interface RotatingFileOptions {
  /** Rotate before the file would reach this many bytes; 0 never rotates. */
  maxBytes: number;
  /** Rotated files to keep (`file.1` … `file.N`). */
  backups: number;
  /** Called once when writing fails (the line is dropped, the daemon goes on). */
  onError?: (err: unknown) => void;
}

const encoder = new TextEncoder();

/**
 * An append-only log file with size-based rotation.
 *
 * @example
 * ```ts
 * import { RotatingFile } from "./log_file.ts";
 * const dir = Deno.makeTempDirSync();
 * const f = new RotatingFile(`${dir}/fc.log`, { maxBytes: 1024, backups: 2 });
 * for (let i = 0; i < 100; i++) f.write(`line ${i}`);
 * f.close();
 * ```
 */
export class RotatingFile {
  readonly path: string;
  #o: RotatingFileOptions;
  #fd: number | undefined;
  #size = 0;
  #regular = true;
  #failed = false;

  constructor(file: string, options: RotatingFileOptions) {
    this.path = path.resolve(file);
    this.#o = options;
    this.#open();
  }

  /** Changes the limits (a reloaded configuration). */
  configure(options: Pick<RotatingFileOptions, "maxBytes" | "backups">): void {
    this.#o = { ...this.#o, ...options };
  }

  #open() {
    fs.mkdirSync(path.dirname(this.path), { recursive: true, mode: 0o700 });
    this.#fd = fs.openSync(this.path, "a", 0o600);
    const st = fs.fstatSync(this.#fd);
    this.#size = st.size;
    this.#regular = st.isFile();
  }

  /** Appends one line (a newline is added). Never throws. */
  write(line: string): void {
    this.writeLines([line]);
  }

  /**
   * Appends lines (a newline is added to each) in as few writes as rotation
   * allows: a file rotates between lines, as with {@linkcode write}. Never throws.
   */
  writeLines(lines: readonly string[]): void {
    try {
      if (this.#fd === undefined) this.#open();
      let chunk: Uint8Array[] = [];
      let chunkBytes = 0;
      for (const line of lines) {
        const bytes = encoder.encode(line.endsWith("\n") ? line : line + "\n");
        if (
          this.#o.maxBytes > 0 && this.#regular && this.#size + chunkBytes > 0 &&
          this.#size + chunkBytes + bytes.length >= this.#o.maxBytes
        ) {
          this.#append(chunk, chunkBytes);
          chunk = [];
          chunkBytes = 0;
          if (this.#size > 0) this.#rotate();
        }
        chunk.push(bytes);
        chunkBytes += bytes.length;
      }
      this.#append(chunk, chunkBytes);
    } catch (e) {
      if (!this.#failed) {
        this.#failed = true;
        this.#o.onError?.(e);
      }
    }
  }

  #append(chunk: Uint8Array[], bytes: number) {
    if (bytes === 0) return;
    const all = new Uint8Array(bytes);
    let at = 0;
    for (const c of chunk) {
      all.set(c, at);
      at += c.length;
    }
    let done = 0;
    while (done < all.length) done += fs.writeSync(this.#fd!, all, done);
    this.#size += bytes;
  }

  #rotate() {
    this.#closeFd();
    const n = this.#o.backups;
    if (n > 0) {
      for (let i = n - 1; i >= 1; i--) {
        const from = `${this.path}.${i}`;
        if (fs.existsSync(from)) fs.renameSync(from, `${this.path}.${i + 1}`);
      }
      fs.renameSync(this.path, `${this.path}.1`);
    } else {
      fs.truncateSync(this.path, 0);
    }
    this.#open();
  }

  /** Reopens the file by name (after an outside tool such as logrotate moved it). */
  reopen(): void {
    this.#closeFd();
    this.#failed = false;
    try {
      this.#open();
    } catch (e) {
      this.#failed = true;
      this.#o.onError?.(e);
    }
  }

  #closeFd() {
    if (this.#fd === undefined) return;
    try {
      fs.closeSync(this.#fd);
    } catch {
      // Already closed.
    }
    this.#fd = undefined;
  }

  close(): void {
    this.#closeFd();
  }
}
