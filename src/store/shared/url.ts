/**
 * Shared store URLs: parsing (`sqlite:/abs/path.db`, `postgres://…`,
 * `mysql://…`) with TLS options, and a form without the password for
 * messages.
 *
 * TLS is set with query parameters, named as in libpq:
 * - `sslmode=disable` (the default): plain TCP;
 * - `sslmode=require` or `verify-full`: TLS; the server certificate must
 *   chain to a trusted CA and name the host (stricter than libpq's
 *   `require`, which checks nothing: certificates are verified by default);
 * - `sslmode=verify-ca`: TLS; the certificate must chain to a trusted CA,
 *   the host name is not checked;
 * - `sslmode=no-verify`: TLS without any check (an explicit opt-out);
 * - `sslrootcert=/abs/ca.pem`: trust this CA file instead of the system's.
 *
 * @module
 */
import { readFileSync } from "node:fs";

/** TLS settings for a database connection. */
export interface DbTls {
  /** PEM text of the CA certificates to trust (the system's when absent). */
  ca?: string;
  /** Whether the certificate chain is verified. */
  verifyChain: boolean;
  /** Whether the certificate must name the host. */
  verifyHost: boolean;
}

/** A parsed shared store URL. */
export type StoreUrl =
  | { kind: "sqlite"; file: string }
  | {
    kind: "postgres" | "mysql";
    host: string;
    port: number;
    user: string;
    password: string;
    database: string;
    tls?: DbTls;
  };

/** A parsed URL of a database server (PostgreSQL or MariaDB/MySQL). */
export type ServerUrl = Exclude<StoreUrl, { kind: "sqlite" }>;

/**
 * The URL with its password replaced by `***`, for messages and logs.
 * Text that is not a URL comes back with anything between `//` and `@` hidden.
 *
 * @example
 * ```ts
 * import { redactStoreUrl } from "./url.ts";
 * redactStoreUrl("postgres://fc:s3cret@db.example:5432/fc"); // "postgres://fc:***@db.example:5432/fc"
 * ```
 */
export function redactStoreUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return url.replace(/\/\/[^/@]*@/, "//***@");
  }
}

const DEFAULT_PORTS = { postgres: 5432, mysql: 3306 } as const;

/**
 * Parses a shared store URL. Throws a `TypeError` naming the URL (without
 * its password) when it cannot be used. `password` replaces the URL's.
 *
 * @example
 * ```ts
 * import { parseStoreUrl } from "./url.ts";
 * parseStoreUrl("mysql://fc:pw@127.0.0.1:3306/fc").kind; // "mysql"
 * ```
 */
export function parseStoreUrl(url: string, password?: string): StoreUrl {
  const shown = redactStoreUrl(url);
  if (url.startsWith("sqlite:")) {
    const file = url.slice("sqlite:".length).replace(/^\/\/(?=\/)/, "");
    if (!file.startsWith("/")) {
      throw new TypeError(`Cannot use shared store "${shown}": the SQLite path must be absolute`);
    }
    return { kind: "sqlite", file };
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError(`Cannot parse shared store URL "${shown}"`);
  }
  const scheme = u.protocol.replace(/:$/, "");
  const kind = scheme === "postgres" || scheme === "postgresql"
    ? "postgres"
    : scheme === "mysql" || scheme === "mariadb"
    ? "mysql"
    : undefined;
  if (!kind) {
    throw new TypeError(
      `Cannot use shared store "${shown}": the scheme must be sqlite:, postgres://, ` +
        `postgresql://, mysql:// or mariadb://`,
    );
  }
  const database = decodeURIComponent(u.pathname.replace(/^\//, ""));
  if (!u.hostname || !database || database.includes("/")) {
    throw new TypeError(`Cannot use shared store "${shown}": it needs a host and a database name`);
  }
  let tls: DbTls | undefined;
  let ca: string | undefined;
  for (const [name, value] of u.searchParams) {
    if (name === "sslmode") {
      switch (value) {
        case "disable":
          tls = undefined;
          break;
        case "require":
        case "verify-full":
          tls = { verifyChain: true, verifyHost: true };
          break;
        case "verify-ca":
          tls = { verifyChain: true, verifyHost: false };
          break;
        case "no-verify":
          tls = { verifyChain: false, verifyHost: false };
          break;
        default:
          throw new TypeError(
            `Cannot use shared store "${shown}": sslmode "${value}" is not one of ` +
              `disable, require, verify-full, verify-ca, no-verify`,
          );
      }
    } else if (name === "sslrootcert") {
      try {
        ca = readFileSync(value, "utf8");
      } catch (e) {
        throw new TypeError(
          `Cannot read the CA file "${value}" of shared store "${shown}": ${(e as Error).message}`,
        );
      }
    } else {
      throw new TypeError(
        `Cannot use shared store "${shown}": unknown parameter "${name}" ` +
          `(known: sslmode, sslrootcert)`,
      );
    }
  }
  if (ca !== undefined) {
    tls ??= { verifyChain: true, verifyHost: true };
    tls.ca = ca;
  }
  const parsed: StoreUrl = {
    kind,
    host: u.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: u.port ? Number(u.port) : DEFAULT_PORTS[kind],
    user: decodeURIComponent(u.username),
    password: password ?? decodeURIComponent(u.password),
    database,
  };
  if (tls) parsed.tls = tls;
  return parsed;
}
