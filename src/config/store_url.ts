/**
 * The `store` setting: `sqlite` (this machine only) or the URL of the
 * shared store of a fleet of nodes (parsed by `store/shared/url.ts`), and
 * the form that status pages, logs and errors print (never the password).
 *
 * @module
 */
import { parseStoreUrl as parseSharedUrl, redactStoreUrl } from "../store/shared/url.ts";

export { redactStoreUrl };

/** What the `store` setting names. */
export type StoreLocation =
  | { kind: "local" }
  | {
    kind: "sqlite" | "postgres" | "mysql";
    /** The URL as given (with its password: pass it only to the database client). */
    url: string;
    /** The URL without its password, for people. */
    redacted: string;
    /** The password in the URL, if any (a secret to mask in logs). */
    password?: string;
  };

/**
 * Parses the `store` setting; a string describes what is wrong (without the password).
 *
 * @example
 * ```ts
 * const s = parseStoreUrl("postgres://app:secret@db.local/site");
 * if (typeof s !== "string" && s.kind !== "local") console.log(s.redacted);
 * ```
 */
export function parseStoreUrl(value: string): StoreLocation | string {
  const v = value.trim();
  if (v === "" || v === "sqlite") return { kind: "local" };
  let kind: "sqlite" | "postgres" | "mysql";
  try {
    kind = parseSharedUrl(v).kind;
  } catch (e) {
    return `Setting "store" must be "sqlite" or a shared store URL: ${(e as Error).message}`;
  }
  let password: string | undefined;
  try {
    password = kind === "sqlite" ? undefined : decodeURIComponent(new URL(v).password) || undefined;
  } catch {
    password = undefined;
  }
  return { kind, url: v, redacted: redactStoreUrl(v), ...(password ? { password } : {}) };
}
