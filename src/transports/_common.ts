/**
 * Helpers shared by the HTTP transports (s3, cf, cloudfiles): MD5 digests, setting text,
 * size settings, per-call timeouts (content types: `_content_type.ts`).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { ClassifiedError } from "../errors.ts";
import { formatBytes } from "../util/format.ts";
import { readRegular, readRegularSync } from "../util/regular_file.ts";

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

/** MD5 (hex) of bytes. */
export function md5Hex(data: Uint8Array): string {
  return createHash("md5").update(data).digest("hex");
}

/** Hex digest to base64 (the form of `Content-MD5`). */
export function hexToBase64(hex: string): string {
  return Buffer.from(hex, "hex").toString("base64");
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
 * @throws {ClassifiedError} (retry) when the size differs.
 */
export async function readExactly(
  localPath: string,
  size: number,
  describe: () => string,
): Promise<Uint8Array<ArrayBuffer>> {
  // Up to 64 KiB with one synchronous read: an asynchronous one costs four hops to a thread
  // and back (open, stat, read, close), more than the read itself. One byte more than
  // expected is read, so a file that grew is found without reading on.
  const data =
    (size <= SYNC_READ
      ? readRegularSync(localPath, size + 1).data
      : await readRegular(localPath)) as Uint8Array<ArrayBuffer>;
  if (data.length !== size) {
    throw new ClassifiedError(
      `${describe()}: the local file changed while uploading (${data.length} bytes, expected ${size})`,
      "retry",
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

/**
 * A deadline for one network call: `signal` aborts when the caller's does
 * or after `timeoutMs`; `timedOut` says which. Call `done()` when the call
 * ended, so that no timer is left pending (unlike `AbortSignal.timeout`,
 * whose timers fire long after a fast call, which costs CPU at hundreds of
 * calls a second).
 */
export function callDeadline(
  caller: AbortSignal,
  timeoutMs: number,
): { signal: AbortSignal; timedOut(): boolean; done(): void } {
  const ctl = new AbortController();
  let timedOut = false;
  const onAbort = () => ctl.abort(caller.reason);
  const timer = setTimeout(() => {
    timedOut = true;
    ctl.abort(new DOMException("The call timed out", "TimeoutError"));
  }, timeoutMs);
  if (caller.aborted) onAbort();
  else caller.addEventListener("abort", onAbort, { once: true });
  return {
    signal: ctl.signal,
    timedOut: () => timedOut,
    done() {
      clearTimeout(timer);
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
