/**
 * Copies of small files on a second thread, for `symlink_or_copy`: the
 * file work of a copy (open and read the source, MD5, write the temp file,
 * rename it over the target) runs in one long-lived Worker with synchronous
 * calls, so that the main thread keeps the database and the scheduling and
 * a second core does the I/O.
 *
 * Copies go to the thread in messages of up to 16 (a full message at once,
 * the rest at the end of the turn of the event loop), and the outcomes of
 * one message come back in one: a message per copy, like an asynchronous
 * call per step, would cost more than the copy.
 *
 * Contract of {@linkcode CopyThread.copy}: the same steps and checks as the
 * synchronous copy it replaces. The source is opened with `O_NONBLOCK` and
 * refused unless the open handle is a regular file (a FIFO swapped in never
 * blocks the thread); at most `size` + 1 bytes are read; the temp file is
 * created new (never written through a leftover or a symlink), with the
 * source's permission bits; on any failure the temp file is removed and the
 * error comes back with its name, code and message, rebuilt as the error
 * the same call would have thrown on the main thread (a Deno error class, a
 * `node:fs` error with its `code`, or the refusal of a non-regular file), so
 * it is classified the same. A source whose size is not `size` is not
 * renamed into place: the outcome says how many bytes were read.
 *
 * The thread ends after an idle period (a Worker holds the process) and at
 * {@linkcode CopyThread.close}; the next copy starts it again. A thread that
 * fails (it cannot start, or crashes) fails the copies it holds as retries
 * and is not used again: {@linkcode CopyThread.usable} turns false and the
 * caller copies on its own thread.
 *
 * @module
 */
import { setImmediate } from "node:timers";
import { ClassifiedError } from "../errors.ts";
import { moduleDataUrl } from "../util/module_url.ts";
import type { PutResult } from "./transport.ts";

/** One copy, as the thread receives it. */
export interface CopyRequest {
  /** The source file (read following symlinks, as the synchronous copy does). */
  src: string;
  /** The temp name next to `dst`. */
  tmp: string;
  dst: string;
  /** The directory to create first, when not known to exist. */
  mkdir: string | undefined;
  /** The size the pipeline stat'ed. */
  size: number;
}

/** What a copy did. */
export type CopyOutcome =
  | { ok: true; md5: string; after?: PutResult["sourceAfter"] }
  /** The source's size was not the expected one: nothing was renamed into place. */
  | { ok: false; copied: number };

/** The thread's own code: plain JavaScript, inline so that a bundle or a binary carries it. */
const THREAD = `
import * as fs from "node:fs";
import { hash } from "node:crypto";
const FLAGS = fs.constants.O_RDONLY | fs.constants.O_NONBLOCK;
let createdMode = 0o644;
function kindOf(st) {
  return st.isFIFO() ? "a FIFO" : st.isSocket() ? "a socket" : st.isDirectory() ? "a directory"
    : st.isCharacterDevice() || st.isBlockDevice() ? "a device" : "not a regular file";
}
// The C library's open/statx/read/close where it answers (see src/util/_native_read.ts: the
// same calls, the same contract); node:fs for everything else, which gives the error.
const O_NATIVE = 0o4000 | 0o2000000; // O_RDONLY | O_NONBLOCK | O_CLOEXEC
const encoder = new TextEncoder();
const cpath = new Uint8Array(16 * 1024);
const empty = new Uint8Array(1);
const stx = new Uint8Array(256);
const stxView = new DataView(stx.buffer);
let c = null;
try {
  if (Deno.build.os === "linux" && (Deno.build.arch === "x86_64" || Deno.build.arch === "aarch64") &&
      typeof Deno.dlopen === "function" && Deno.permissions.querySync({ name: "ffi" }).state === "granted") {
    c = Deno.dlopen("libc.so.6", {
      open: { parameters: ["buffer", "i32"], result: "i32" },
      read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
      close: { parameters: ["i32"], result: "i32" },
      statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32" },
    }).symbols;
    // The layouts are the ABI's; a check against Deno's own answer keeps a surprise away.
    const probe = Deno.makeTempFileSync();
    try {
      Deno.writeFileSync(probe, new Uint8Array([1, 2, 3]));
      const r = readNative(probe, 3);
      if (!r || r.data.length !== 3 || r.data[2] !== 3 || r.mode !== (Deno.statSync(probe).mode & 0o7777)) c = null;
    } finally {
      Deno.removeSync(probe);
    }
  }
} catch {
  c = null;
}
function readNative(p, expected) {
  if (p.length * 3 >= cpath.length || p.includes("\\0")) return undefined;
  cpath[encoder.encodeInto(p, cpath).written] = 0;
  const fd = c.open(cpath, O_NATIVE);
  if (fd < 0) return undefined;
  try {
    if (c.statx(fd, empty, 0x1000, 0x3, stx) !== 0) return undefined;
    const mode = stxView.getUint16(0x1c, true);
    if ((mode & 0o170000) !== 0o100000) return undefined;
    const max = expected + 1;
    const data = new Uint8Array(max);
    let got = 0;
    while (got < max) {
      const r = Number(c.read(fd, got === 0 ? data : data.subarray(got), BigInt(max - got)));
      if (r < 0) return undefined;
      if (r === 0) break;
      got += r;
      if (got === expected) break;
    }
    return { data: data.subarray(0, got), mode: mode & 0o7777 };
  } finally {
    c.close(fd);
  }
}
function read(p, expected) {
  const quick = c === null ? undefined : readNative(p, expected);
  return quick ?? readNode(p, expected);
}
function readNode(p, expected) {
  const fd = fs.openSync(p, FLAGS);
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) {
      const e = new Error('Cannot read "' + p + '": it is ' + kindOf(st) + " now");
      e.notRegular = true;
      throw e;
    }
    const data = new Uint8Array(expected + 1);
    let n = 0;
    while (n < data.length) {
      const r = fs.readSync(fd, data, n, data.length - n, null);
      if (r === 0) break;
      n += r;
      if (n === expected) break;
    }
    return { data: data.subarray(0, n), mode: st.mode & 0o7777 };
  } finally {
    fs.closeSync(fd);
  }
}
function create(tmp, data, options) {
  try {
    Deno.writeFileSync(tmp, data, options);
  } catch (e) {
    if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    Deno.removeSync(tmp);
    Deno.writeFileSync(tmp, data, options);
  }
}
function copy(r) {
  try {
    if (r.mkdir !== undefined) Deno.mkdirSync(r.mkdir, { recursive: true });
    const { data, mode } = read(r.src, r.size);
    create(r.tmp, data, mode === createdMode ? { createNew: true } : { mode, createNew: true });
    if (data.byteLength !== r.size) {
      fs.rmSync(r.tmp, { force: true });
      return { ok: false, copied: data.byteLength };
    }
    const md5 = hash("md5", data, "hex");
    try {
      Deno.renameSync(r.tmp, r.dst);
    } catch (e) {
      // An empty directory where the file goes holds nothing: replace it.
      try { fs.rmdirSync(r.dst); } catch { throw e; }
      Deno.renameSync(r.tmp, r.dst);
    }
    // The source's lstat after the read, as the pipeline's Deno.lstatSync gives it.
    let after;
    try {
      const l = Deno.lstatSync(r.src);
      if (l.isFile) {
        after = { size: l.size, mtimeMs: l.mtime?.getTime() ?? 0, ctimeMs: l.ctime?.getTime() ?? 0, ino: l.ino ?? 0 };
      }
    } catch { /* The pipeline stats it again and finds what happened. */ }
    return after ? { ok: true, md5, after } : { ok: true, md5 };
  } catch (e) {
    try { fs.rmSync(r.tmp, { force: true }); } catch { /* Reported: the copy's error. */ }
    const deno = Object.entries(Deno.errors).find(([, c]) => e instanceof c);
    return {
      error: {
        message: String(e && e.message || e),
        name: e && e.name,
        code: e && typeof e.code === "string" ? e.code : undefined,
        deno: deno ? deno[0] : undefined,
        notRegular: !!(e && e.notRegular),
      },
    };
  }
}
self.onmessage = (m) => {
  const { umask, batch } = m.data;
  if (umask !== undefined) createdMode = 0o666 & ~umask;
  self.postMessage(batch.map(copy));
};
`;

/** The error a copy failed with, as the thread sends it. */
interface WireError {
  message: string;
  name?: string;
  code?: string;
  deno?: string;
  notRegular: boolean;
}

type Reply = CopyOutcome | { error: WireError };

interface Waiting {
  req: CopyRequest;
  resolve(o: CopyOutcome): void;
  reject(e: unknown): void;
}

/**
 * Copies per message at most: a full message goes at once, so the thread
 * copies while this one prepares the next files (one message per turn would
 * make the two threads take turns).
 */
const CHUNK = 16;

/** Milliseconds without copies after which the thread ends. */
const IDLE_MS = 2000;

let url: string | undefined;

/** One thread that copies small files in batches. */
export class CopyThread {
  readonly #umask: number;
  #worker: Worker | undefined;
  /** Copies asked for in this turn, not sent yet. */
  #queued: Waiting[] = [];
  /** Batches sent, in order (a Worker answers its messages in order). */
  readonly #sent: Waiting[][] = [];
  #scheduled = false;
  #idle: ReturnType<typeof setTimeout> | undefined;
  #failed = false;

  /** `umask`: the process's, read once by the caller (the thread cannot read it). */
  constructor(umask: number) {
    this.#umask = umask;
  }

  /** Whether copies can go to the thread (false once it failed). */
  get usable(): boolean {
    return !this.#failed;
  }

  /** Copies one file (see the module's contract). */
  copy(req: CopyRequest): Promise<CopyOutcome> {
    return new Promise((resolve, reject) => {
      this.#queued.push({ req, resolve, reject });
      if (this.#queued.length >= CHUNK) this.#send();
      else if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => {
          this.#scheduled = false;
          this.#send();
        });
      }
    });
  }

  /** Ends the thread; copies under way fail. */
  close(): void {
    this.#stop(new Error("The copy thread was closed"));
  }

  #send(): void {
    const batch = this.#queued;
    if (batch.length === 0) return;
    this.#queued = [];
    if (this.#failed) {
      const e = new ClassifiedError("The copy thread failed", "retry");
      for (const w of batch) w.reject(e);
      return;
    }
    let worker = this.#worker;
    let umask: number | undefined;
    if (!worker) {
      try {
        worker = this.#start();
      } catch (e) {
        this.#failed = true;
        for (const w of batch) w.reject(e);
        return;
      }
      umask = this.#umask;
    }
    if (this.#idle !== undefined) {
      clearTimeout(this.#idle);
      this.#idle = undefined;
    }
    this.#sent.push(batch);
    worker.postMessage({ umask, batch: batch.map((w) => w.req) });
  }

  #start(): Worker {
    url ??= moduleDataUrl(THREAD);
    const worker = new Worker(url, { type: "module" });
    worker.onmessage = (m: MessageEvent<Reply[]>) => this.#answer(m.data);
    worker.onerror = (e) => {
      e.preventDefault();
      this.#failed = true;
      this.#stop(new ClassifiedError(`The copy thread failed: ${e.message}`, "retry"));
    };
    this.#worker = worker;
    return worker;
  }

  #answer(replies: Reply[]): void {
    const batch = this.#sent.shift();
    if (!batch) return;
    batch.forEach((w, i) => {
      const r = replies[i]!;
      if ("error" in r) w.reject(rebuild(r.error));
      else w.resolve(r);
    });
    if (this.#sent.length === 0 && this.#idle === undefined) {
      const idle = setTimeout(() => {
        this.#idle = undefined;
        if (this.#sent.length === 0 && this.#queued.length === 0) this.#stop();
      }, IDLE_MS);
      // The thread holds the process meanwhile; the timer itself does not.
      Deno.unrefTimer(idle as unknown as number);
      this.#idle = idle;
    }
  }

  #stop(reason?: Error): void {
    if (this.#idle !== undefined) clearTimeout(this.#idle);
    this.#idle = undefined;
    this.#worker?.terminate();
    this.#worker = undefined;
    const lost = this.#sent.splice(0).flat();
    if (lost.length > 0) {
      const e = reason ?? new Error("The copy thread ended");
      for (const w of lost) w.reject(e);
    }
  }
}

/** The error the same call would have thrown on this thread. */
function rebuild(w: WireError): Error {
  if (w.notRegular) return new ClassifiedError(w.message, "retry");
  const DenoError = w.deno
    ? (Deno.errors as unknown as Record<string, new (m: string) => Error>)[w.deno]
    : undefined;
  const e = DenoError ? new DenoError(w.message) : new Error(w.message);
  if (w.name && !DenoError) e.name = w.name;
  if (w.code !== undefined) (e as { code?: string }).code = w.code;
  return e;
}
