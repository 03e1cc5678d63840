/**
 * Byte counts for people.
 *
 * @module
 */

/** Options for {@linkcode formatBytes}. */
export interface FormatBytesOptions {
  /** Drop a zero fraction (`5 MiB` instead of `5.0 MiB`), for limits in messages. */
  trim?: boolean;
}

/**
 * Formats a byte count in binary units: `123 B`, `1.5 KiB`, `20.0 MiB`,
 * `1.25 GiB`.
 *
 * @example
 * ```ts
 * import { formatBytes } from "./format.ts";
 * formatBytes(1536); // "1.5 KiB"
 * formatBytes(5 * 1024 * 1024, { trim: true }); // "5 MiB"
 * ```
 */
export function formatBytes(n: number, options: FormatBytesOptions = {}): string {
  const fixed = (v: number, digits: number) =>
    options.trim && Number.isInteger(v) ? String(v) : v.toFixed(digits);
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${fixed(n / 1024, 1)} KiB`;
  if (n < 1024 ** 3) return `${fixed(n / 1024 ** 2, 1)} MiB`;
  if (n < 1024 ** 4) return `${fixed(n / 1024 ** 3, 2)} GiB`;
  return `${fixed(n / 1024 ** 4, 2)} TiB`;
}
