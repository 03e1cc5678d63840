/**
 * The `store` setting: `sqlite` (this machine only) or the location of the
 * shared store of a fleet of nodes. Parsing and the redacted form that
 * status pages, logs and errors print (never the password).
 *
 * @module
 */

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
 * Parses the `store` setting; a string describes what is wrong.
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
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(v)?.[1]?.toLowerCase();
  if (scheme === "sqlite") {
    const file = v.slice("sqlite:".length).replace(/^\/\/(?=\/)/, "");
    if (!file.startsWith("/")) {
      return `Setting "store" must name an absolute SQLite file ("sqlite:/path/shared.db"), not "${v}"`;
    }
    return { kind: "sqlite", url: v, redacted: v };
  }
  const kind = scheme === "postgres" || scheme === "postgresql"
    ? "postgres"
    : scheme === "mysql" || scheme === "mariadb"
    ? "mysql"
    : undefined;
  if (!kind) {
    return `Setting "store" must be "sqlite" or a URL postgres://…, mysql://…, mariadb://… or sqlite:/path (not "${
      redactStoreUrl(v)
    }")`;
  }
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return `Setting "store" is not a valid URL: "${redactStoreUrl(v)}"`;
  }
  if (!u.hostname) return `Setting "store" names no host: "${redactStoreUrl(v)}"`;
  if (u.pathname.replace(/^\//, "") === "") {
    return `Setting "store" names no database ("${redactStoreUrl(v)}"): add /DATABASE`;
  }
  const password = u.password ? decodeURIComponent(u.password) : undefined;
  return {
    kind,
    url: v,
    redacted: redactStoreUrl(v),
    ...(password ? { password } : {}),
  };
}

/** The URL with its password replaced by `***` (any text: best effort, never throws). */
export function redactStoreUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*):[^@/]*@/i, "$1:***@")
    .replace(/([?&](?:password|pass|pwd)=)[^&]*/gi, "$1***");
}
