/**
 * SFTP sessions for the connection pool, several on one SSH connection.
 *
 * Each session is its own SSH channel, served by its own server process
 * (OpenSSH forks one per session), so sessions never wait for each other's
 * requests; what they share is the TCP socket and its encryption. The SSH
 * packets of all of a connection's sessions written within one tick leave in
 * one socket write, and each write wakes the server once: with one file per
 * session and several sessions per connection, a busy machine spends fewer
 * wake-ups (and fewer logins) per file than with one connection per file.
 *
 * A server that refuses one more session on a connection (OpenSSH's
 * `MaxSessions`, 10 by default; 1 on some hosting) caps that connection at
 * the sessions it took, and the next session opens on a new connection.
 *
 * @module
 */
import { ConnectFailure } from "./errors.ts";
import {
  closeSession,
  type Conn,
  type ConnectEnv,
  disconnect,
  type Link,
  openLink,
  openSession,
} from "./connect.ts";

/** Sessions per SSH connection at most (OpenSSH allows 10 by default). */
export const SESSIONS_PER_LINK = 8;

/** A connection being opened or open, with the sessions it carries or will carry. */
interface Entry {
  ready: Promise<Link>;
  link?: Link;
  /** Sessions open, or being opened, on it. */
  users: number;
  /** Most sessions it may carry. */
  cap: number;
  failed: boolean;
}

/** Opens sessions, sharing SSH connections; ends a connection with its last session. */
export class Sessions {
  readonly #env: ConnectEnv;
  readonly #perLink: number;
  readonly #entries = new Set<Entry>();
  /** Ends handshakes when the transport closes (a caller's abort does not: others may wait). */
  readonly #closing = new AbortController();

  constructor(env: ConnectEnv, perLink = SESSIONS_PER_LINK) {
    this.#env = env;
    this.#perLink = Math.max(1, perLink);
  }

  /** Opens one session: on a connection with room, or on a new one. */
  async open(signal: AbortSignal): Promise<Conn> {
    for (;;) {
      const entry = this.#room() ?? this.#dial();
      entry.users++;
      let conn: Conn | undefined;
      try {
        const link = await abortable(entry.ready, signal);
        conn = await openSession(this.#env, link, signal);
        return conn;
      } catch (err) {
        // Refused on a connection that carries (or is opening) others: it is full, try
        // another one. The others still being opened count, as ssh2 confirms a session
        // only after its SFTP handshake, later than it reports a refused one; those of
        // them that are refused too lower the cap further.
        const others = entry.users - 1;
        if (err instanceof ConnectFailure && err.tooMany && others > 0 && entry.link?.alive) {
          entry.cap = Math.min(entry.cap, others);
          continue;
        }
        throw err;
      } finally {
        if (conn === undefined) this.#leave(entry);
      }
    }
  }

  /** Ends a session, and its connection when it was the last one. */
  close(conn: Conn): Promise<void> {
    closeSession(conn);
    for (const e of this.#entries) {
      if (e.link === conn.link) {
        this.#leave(e);
        break;
      }
    }
    return Promise.resolve();
  }

  /** Ends every connection. */
  async closeAll(): Promise<void> {
    this.#closing.abort(new Error("the transport is closed"));
    const links = [...this.#entries].map((e) => e.link).filter((l): l is Link => !!l);
    this.#entries.clear();
    await Promise.all(links.map(disconnect));
  }

  /** A live connection (or one being opened) with room for one more session. */
  #room(): Entry | undefined {
    for (const e of this.#entries) {
      if (!e.failed && (e.link === undefined || e.link.alive) && e.users < e.cap) return e;
    }
    return undefined;
  }

  #dial(): Entry {
    const entry: Entry = {
      ready: openLink(this.#env, this.#closing.signal),
      users: 0,
      cap: this.#perLink,
      failed: false,
    };
    this.#entries.add(entry);
    entry.ready.then((link) => {
      entry.link = link;
      // Everyone who waited for it gave up meanwhile.
      if (entry.users === 0) this.#end(entry);
    }, () => {
      entry.failed = true;
      this.#entries.delete(entry);
    });
    return entry;
  }

  #leave(entry: Entry): void {
    entry.users--;
    if (entry.users <= 0 && entry.link) this.#end(entry);
  }

  #end(entry: Entry): void {
    this.#entries.delete(entry);
    if (entry.link) void disconnect(entry.link);
  }
}

/** `p`, or the signal's reason once it aborts first. */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
