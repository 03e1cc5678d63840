/**
 * Helpers shared by the HTTP transports (s3, cf, cloudfiles): MD5 digests, setting text,
 * size settings, per-call timeouts (content types: `_content_type.ts`).
 *
 * @module
 */
import { hash } from "node:crypto";
import { SourceChanged } from "../errors.ts";
import { formatBytes } from "../util/format.ts";
import { readRegular, readRegularSync } from "../util/regular_file.ts";
import { readRegularNative } from "../util/_native_read.ts";

/** Files up to this size are read with synchronous calls. */
const SYNC_READ = 64 * 1024;

/** Files up to this size are read into memory and sent as bytes (no second read). */
export const SMALL_FILE = 1024 * 1024;

/** A setting's text trimmed; undefined when unset or blank. */
export function settingText(value: string | undefined): string | undefined {
  const s = value?.trim();
  return s ? s : undefined;
}

/** One mebibyte. */
export const MiB = 1024 * 1024;

/** MD5 (hex) of bytes, in one call (a `createHash` object costs more than hashing a small file). */
export function md5Hex(data: Uint8Array): string {
  return hash("md5", data, "hex");
}

/** Hex digest to base64 (the form of `Content-MD5`). */
export function hexToBase64(hex: string): string {
  let bin = "";
  for (let i = 0; i + 1 < hex.length; i += 2) {
    bin += String.fromCharCode(parseInt(hex.slice(i, i + 2), 16));
  }
  return btoa(bin);
}

/** Whether `s` looks like a hex MD5 digest. */
export function isMd5(s: string | undefined): s is string {
  return s !== undefined && /^[0-9a-f]{32}$/i.test(s);
}

/** Removes the quotes HTTP puts around an ETag (and a weak `W/` prefix). */
export function unquoteEtag(etag: string | undefined | null): string | undefined {
  if (!etag) return undefined;
  return etag.replace(/^W\//, "").replace(/^"|"$/g, "");
}

/**
 * Reads a whole (small) local file and checks that it still has the size the
 * pipeline stat'ed; a different size means the file changed meanwhile.
 *
 * @throws {SourceChanged} when the size differs (the file changed meanwhile).
 */
export async function readExactly(
  localPath: string,
  size: number,
  describe: () => string,
): Promise<Uint8Array<ArrayBuffer>> {
  // Up to 64 KiB with one synchronous read: an asynchronous one costs four hops to a thread
  // and back (open, stat, read, close), more than the read itself; through the C library
  // where it answers (node:fs's fstat result alone costs more than the calls). Through
  // node:fs one byte more than expected is read, so a file that grew is found here; the C
  // library's read stops at the expected size, and a file that grew is found by the
  // pipeline's stat after the transfer, as for every change during an upload.
  const data =
    (size <= SYNC_READ
      ? (readRegularNative(localPath, size) ?? readRegularSync(localPath, size + 1)).data
      : await readRegular(localPath)) as Uint8Array<ArrayBuffer>;
  if (data.length !== size) {
    throw new SourceChanged(
      `${describe()}: the local file changed while uploading (${data.length} bytes, expected ${size})`,
    );
  }
  return data;
}

/**
 * Parses a byte size: a whole number of bytes or a number with a unit
 * (`k`, `M`, `G`, `T`, optionally followed by `i`/`iB`/`B`; all powers of
 * 1024). Returns undefined when the text is not a size.
 *
 * @example
 * ```ts
 * import { parseSize } from "./_common.ts";
 * parseSize("64M"); // 67108864
 * parseSize("5 MiB"); // 5242880
 * ```
 */
export function parseSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text);
  if (!m) return undefined;
  const mult = {
    "": 1,
    k: 1024,
    m: MiB,
    g: 1024 * MiB,
    t: 1024 * 1024 * MiB,
  }[m[2]!.toLowerCase()]!;
  const n = Math.round(Number(m[1]) * mult);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Checks a size setting; returns a problem or undefined. */
export function checkSize(
  name: string,
  value: string | undefined,
  min: number,
  max = Infinity,
): string | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  const n = parseSize(value);
  if (n === undefined) {
    return `Setting "${name}" must be a size such as "64M" or "67108864", not "${value}"`;
  }
  if (n < min) {
    return `Setting "${name}" must be at least ${formatBytes(min, { trim: true })}, not "${value}"`;
  }
  if (n > max) {
    return `Setting "${name}" must be at most ${formatBytes(max, { trim: true })}, not "${value}"`;
  }
  return undefined;
}

/** A call's deadline, waiting in {@linkcode pending}. */
interface Deadline {
  /** `performance.now()` at which the call times out. */
  at: number;
  expire(): void;
}

/** Deadlines of the calls in flight; one timer, armed for the earliest, serves them all. */
const pending = new Set<Deadline>();
let sweepTimer: ReturnType<typeof setTimeout> | undefined;
let sweepAt = Infinity;

function armSweep(at: number): void {
  if (sweepTimer !== undefined) {
    if (sweepAt <= at) return;
    clearTimeout(sweepTimer);
  }
  sweepAt = at;
  // At most the longest delay a timer takes (a longer one would fire at once).
  const delay = Math.min(2 ** 31 - 1, Math.max(0, Math.ceil(at - performance.now())));
  sweepTimer = setTimeout(sweep, delay);
}

/** Forgets a deadline; the timer goes once no call is left (it would hold the process). */
function forget(d: Deadline): void {
  pending.delete(d);
  if (pending.size === 0 && sweepTimer !== undefined) {
    clearTimeout(sweepTimer);
    sweepTimer = undefined;
    sweepAt = Infinity;
  }
}

function sweep(): void {
  sweepTimer = undefined;
  sweepAt = Infinity;
  const now = performance.now();
  let next = Infinity;
  for (const d of pending) {
    if (d.at <= now) {
      pending.delete(d);
      d.expire();
    } else if (d.at < next) next = d.at;
  }
  if (next !== Infinity) armSweep(next);
}

/**
 * A deadline for one network call: `signal` aborts when the caller's does
 * or after `timeoutMs`; `timedOut` says which. Call `done()` when the call
 * ended. The deadlines of all calls share one timer, armed for the
 * earliest (a timer per call, set and cleared hundreds of times a second,
 * cost more than the rest of this; `AbortSignal.timeout` leaves its timers
 * pending long after a fast call).
 */
export function callDeadline(
  caller: AbortSignal,
  timeoutMs: number,
): { signal: AbortSignal; timedOut(): boolean; done(): void } {
  const ctl = new AbortController();
  let timedOut = false;
  const onAbort = () => ctl.abort(caller.reason);
  const deadline: Deadline = {
    at: performance.now() + timeoutMs,
    expire() {
      timedOut = true;
      caller.removeEventListener("abort", onAbort);
      ctl.abort(new DOMException("The call timed out", "TimeoutError"));
    },
  };
  if (caller.aborted) onAbort();
  else {
    caller.addEventListener("abort", onAbort, { once: true });
    pending.add(deadline);
    armSweep(deadline.at);
  }
  return {
    signal: ctl.signal,
    timedOut: () => timedOut,
    done() {
      forget(deadline);
      caller.removeEventListener("abort", onAbort);
    },
  };
}

/** The caller's signal combined with a timeout for one network call. */
export function callSignal(signal: AbortSignal, timeoutMs: number): AbortSignal {
  return AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]);
}

/** The last segment of a `/`-separated path. */
export function basename(p: string): string {
  return p.slice(p.lastIndexOf("/") + 1);
}
