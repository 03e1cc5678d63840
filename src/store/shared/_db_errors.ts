/**
 * What a database server's error means for the shared store: the database
 * is unavailable right now (connection refused, reset or timed out, the
 * server starting up or shutting down, too many connections), or the
 * transaction lost a race (deadlock, serialization failure, lock wait
 * timeout) and is simply run again, or neither (a real error).
 *
 * @module
 */
import { causes, ClassifiedError, classify, StoreUnavailable } from "../../errors.ts";

/**
 * How the store reacts to a database error: `config` is a login, database
 * name or certificate that will not work until someone fixes the settings.
 */
export type DbErrorClass = "unavailable" | "again" | "config" | "other";

/** Codes of errors that only a change of the settings fixes. */
const CONFIG = new Set([
  // PostgreSQL: invalid_password, invalid_authorization_specification, invalid_catalog_name
  "28P01",
  "28000",
  "3D000",
  // MariaDB/MySQL
  "ER_ACCESS_DENIED_ERROR",
  "ER_DBACCESS_DENIED_ERROR",
  "ER_BAD_DB_ERROR",
  "ER_NOT_SUPPORTED_AUTH_MODE",
  "HANDSHAKE_NO_SSL_SUPPORT",
  // TLS (node:tls)
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** PostgreSQL SQLSTATEs that mean the server cannot serve us right now. */
const PG_UNAVAILABLE = new Set([
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now (starting up, recovering)
  "53300", // too_many_connections
  "53000", // insufficient_resources
  "58000", // system_error
]);
/** PostgreSQL SQLSTATEs of a lost race: run the transaction again. */
const PG_AGAIN = new Set(["40001", "40P01", "55P03"]);
/** MariaDB/MySQL error codes that mean the server cannot serve us right now. */
const MY_UNAVAILABLE = new Set([
  "ER_SERVER_SHUTDOWN",
  "ER_CON_COUNT_ERROR",
  "ER_TOO_MANY_USER_CONNECTIONS",
  "ER_CONNECTION_KILLED",
  "ER_NET_READ_ERROR",
  "ER_NET_READ_INTERRUPTED",
  "ER_NET_ERROR_ON_WRITE",
  "ER_NET_WRITE_INTERRUPTED",
  "ER_SERVER_GONE_ERROR",
  "ER_SERVER_LOST",
  "PROTOCOL_CONNECTION_LOST",
  "PROTOCOL_SEQUENCE_TIMEOUT",
  "ER_GET_CONNECTION_TIMEOUT",
]);
/** MariaDB/MySQL error codes of a lost race. */
const MY_AGAIN = new Set(["ER_LOCK_DEADLOCK", "ER_LOCK_WAIT_TIMEOUT", "ER_CHECKREAD"]);

/** Messages of client-side connection failures that carry no code. */
const UNAVAILABLE_MESSAGE =
  /connection terminated|timeout exceeded when trying to connect|not queryable|connection is in closed state|pool is closed|connect etimedout|query read timeout|the server closed the connection|connection lost/i;

/** Classifies an error of `pg` or `mysql2` (anywhere in the `cause` chain). */
export function classifyDbError(err: unknown): DbErrorClass {
  if (err instanceof StoreUnavailable) return "unavailable";
  for (const e of causes(err)) {
    const code = (e as { code?: unknown })?.code;
    if (typeof code === "string" && CONFIG.has(code)) return "config";
    if (e instanceof Error && /certificate/i.test(e.message)) return "config";
  }
  for (const e of causes(err)) {
    const code = (e as { code?: unknown })?.code;
    if (typeof code === "string") {
      if (PG_AGAIN.has(code) || MY_AGAIN.has(code)) return "again";
      if (PG_UNAVAILABLE.has(code) || MY_UNAVAILABLE.has(code) || code.startsWith("08")) {
        return "unavailable";
      }
    }
    if ((e as { fatal?: unknown })?.fatal === true) return "unavailable";
    if (e instanceof Error && UNAVAILABLE_MESSAGE.test(e.message)) return "unavailable";
  }
  return classify(err) === "server" ? "unavailable" : "other";
}

/**
 * Runs `fn`, running it again (up to `attempts` times, with a short random
 * pause) when the transaction lost a race, and turning an unavailable
 * database into a {@linkcode StoreUnavailable}, and a login, database or
 * certificate that will not work into a `ClassifiedError` of kind `auth`
 * (no retry helps); both messages name the store (`shown`, without its
 * password) and the action.
 */
export async function withDbErrors<T>(
  shown: string,
  action: string,
  fn: () => Promise<T>,
  attempts = 8,
): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await fn();
    } catch (e) {
      const cls = classifyDbError(e);
      if (cls === "again" && attempt < attempts) {
        await new Promise((r) => setTimeout(r, Math.random() * 20 * attempt));
        continue;
      }
      const why = e instanceof Error ? e.message : String(e);
      if (cls === "config") {
        throw new ClassifiedError(
          `Cannot ${action} the shared store "${shown}": ${why} (check the store setting)`,
          "auth",
          { cause: e },
        );
      }
      if (cls === "unavailable") {
        if (e instanceof StoreUnavailable) throw e;
        throw new StoreUnavailable(`Cannot ${action} the shared store "${shown}": ${why}`, {
          cause: e,
        });
      }
      throw e;
    }
  }
}
