/**
 * A small HTTP/1.1 client for small requests with bodies in memory, on
 * pooled keep-alive TCP (or TLS) connections: the request line, headers and
 * body leave in one write, and the answer is read into memory. It does a
 * fraction of `fetch`'s work per request (no Request/Response/Headers
 * objects, no body streams), which is most of a small S3 PUT's cost on the
 * client. What it does not do, `fetch` does: redirects (answers are
 * returned as they are), proxies (callers use `fetch` when one is set),
 * compression, HTTP/2, `Expect: 100-continue`.
 *
 * @module
 */

/** Response headers: names in lower case, repeated headers joined with ", ". */
export class HeaderMap implements Iterable<[string, string]> {
  readonly #m = new Map<string, string>();

  /** The value of `name` (any case), or null. */
  get(name: string): string | null {
    return this.#m.get(name.toLowerCase()) ?? null;
  }

  /** Adds a header (its name is lower-cased). */
  append(name: string, value: string): void {
    const k = name.toLowerCase();
    const old = this.#m.get(k);
    this.#m.set(k, old === undefined ? value : `${old}, ${value}`);
  }

  /**
   * Reads the header lines of `head` from `from` up to its end (the empty
   * line); false when one is malformed.
   */
  parse(head: string, from: number): boolean {
    const m = this.#m;
    let at = from;
    for (;;) {
      const eol = head.indexOf("\r\n", at);
      const end = eol < 0 ? head.length : eol;
      if (end > at) {
        const c = head.indexOf(":", at);
        if (c <= at || c > end) return false;
        const k = head.slice(at, c).trim().toLowerCase();
        const v = head.slice(c + 1, end).trim();
        const old = m.get(k);
        m.set(k, old === undefined ? v : `${old}, ${v}`);
      }
      if (eol < 0) return true;
      at = eol + 2;
    }
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.#m.entries();
  }
}

/** An answer read in full. */
export interface Http1Response {
  status: number;
  headers: HeaderMap;
  /** The body as bytes (empty for HEAD, 1xx, 204 and 304). */
  body: Uint8Array;
}

/**
 * The connection failed before the status line arrived: the request may not
 * have reached the server (a keep-alive connection it had closed), so an
 * idempotent request can be sent again.
 */
export class NoAnswerError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "NoAnswerError";
  }
}

/** The status line arrived but the rest of the answer did not, or it was malformed. */
export class CutOffError extends Error {
  readonly status: number;
  constructor(status: number, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "CutOffError";
    this.status = status;
  }
}

/** Bytes of response head accepted at most. */
const MAX_HEAD = 64 * 1024;
/** Bytes of response body accepted at most (answers to small requests are small). */
const MAX_BODY = 16 * 1024 * 1024;

const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");

/** One connection and what it has read past the last answer (nothing, with HTTP/1.1 rules). */
class Connection {
  readonly conn: Deno.Conn;
  #buf = new Uint8Array(16 * 1024);
  #len = 0;
  /** Set once the connection may not carry another request. */
  done = false;

  constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  close(): void {
    this.done = true;
    try {
      this.conn.close();
    } catch {
      // Closed already.
    }
  }

  /** Reads more bytes into the buffer; false at the end of the stream. */
  async #fill(): Promise<boolean> {
    if (this.#len === this.#buf.length) {
      const bigger = new Uint8Array(this.#buf.length * 2);
      bigger.set(this.#buf.subarray(0, this.#len));
      this.#buf = bigger;
    }
    const n = await this.conn.read(this.#buf.subarray(this.#len));
    if (n === null) return false;
    this.#len += n;
    return true;
  }

  /** Removes and returns the first `n` buffered bytes. */
  #take(n: number): Uint8Array {
    const out = this.#buf.slice(0, n);
    this.#buf.copyWithin(0, n, this.#len);
    this.#len -= n;
    return out;
  }

  /** The index just past the first CRLF at or after `from`, or -1. */
  #lineEnd(from: number): number {
    for (let i = from; i + 1 < this.#len; i++) {
      if (this.#buf[i] === 13 && this.#buf[i + 1] === 10) return i + 2;
    }
    return -1;
  }

  async send(head: string, body: Uint8Array | undefined, method: string): Promise<Http1Response> {
    const h = encoder.encode(head);
    let out = h;
    if (body && body.length > 0) {
      out = new Uint8Array(h.length + body.length);
      out.set(h);
      out.set(body, h.length);
    }
    let status = 0;
    try {
      for (let off = 0; off < out.length;) off += await this.conn.write(out.subarray(off));
      // The head: the status line and headers up to the empty line.
      let end = -1;
      let scanned = 0;
      for (;;) {
        for (let i = Math.max(0, scanned - 3); i + 3 < this.#len; i++) {
          if (
            this.#buf[i] === 13 && this.#buf[i + 1] === 10 && this.#buf[i + 2] === 13 &&
            this.#buf[i + 3] === 10
          ) {
            end = i + 4;
            break;
          }
        }
        if (end >= 0) break;
        scanned = this.#len;
        if (this.#len > MAX_HEAD) throw new CutOffError(status, "response head too large");
        if (!(await this.#fill())) {
          throw status
            ? new CutOffError(status, "connection closed in the response head")
            : new NoAnswerError("connection closed before an answer");
        }
        if (status === 0 && this.#len >= 12) status = statusOfBytes(this.#buf) ?? 0;
      }
      const text = latin1.decode(this.#take(end));
      const lineEnd = text.indexOf("\r\n");
      const parsed = statusOf(text);
      if (parsed === undefined) {
        throw new CutOffError(
          status,
          `not an HTTP/1.x answer: ${text.slice(0, lineEnd).slice(0, 60)}`,
        );
      }
      status = parsed;
      const headers = new HeaderMap();
      if (!headers.parse(text, lineEnd + 2)) {
        throw new CutOffError(status, "malformed response header");
      }
      if (status >= 100 && status < 200) {
        // An interim answer (we never ask for 100-continue): the real one follows.
        return await this.send("", undefined, method);
      }
      const connection = (headers.get("connection") ?? "").toLowerCase();
      const http10 = text.charCodeAt(7) === 48; // "HTTP/1.0"
      if (http10 ? !connection.includes("keep-alive") : connection.includes("close")) {
        this.done = true;
      }
      let data: Uint8Array;
      const length = headers.get("content-length");
      const chunked = /\bchunked\b/i.test(headers.get("transfer-encoding") ?? "");
      if (method === "HEAD" || status === 204 || status === 304) data = new Uint8Array();
      else if (chunked) data = await this.#chunked(status);
      else if (length !== null) {
        if (!/^\d+$/.test(length) || Number(length) > MAX_BODY) {
          throw new CutOffError(status, `bad content-length "${length}"`);
        }
        const n = Number(length);
        while (this.#len < n) {
          if (!(await this.#fill())) throw new CutOffError(status, "connection closed in the body");
        }
        data = this.#take(n);
      } else {
        // No length: the body runs to the end of the connection.
        while (await this.#fill()) {
          if (this.#len > MAX_BODY) throw new CutOffError(status, "response body too large");
        }
        data = this.#take(this.#len);
        this.done = true;
      }
      return { status, headers, body: data };
    } catch (err) {
      this.close();
      if (err instanceof NoAnswerError || err instanceof CutOffError) throw err;
      // A write or read failed: before the status line, the server may never have seen it.
      const msg = (err as Error)?.message ?? String(err);
      throw status
        ? new CutOffError(status, msg, { cause: err })
        : new NoAnswerError(msg, { cause: err });
    }
  }

  async #chunked(status: number): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      let eol: number;
      while ((eol = this.#lineEnd(0)) < 0) {
        if (!(await this.#fill())) throw new CutOffError(status, "connection closed in a chunk");
      }
      const size = parseInt(latin1.decode(this.#take(eol)), 16);
      if (!Number.isFinite(size) || size < 0) throw new CutOffError(status, "malformed chunk");
      if (size === 0) {
        // Trailers, if any, up to the empty line.
        for (;;) {
          while ((eol = this.#lineEnd(0)) < 0) {
            if (!(await this.#fill())) throw new CutOffError(status, "connection closed");
          }
          if (this.#take(eol).length === 2) break;
        }
        break;
      }
      total += size;
      if (total > MAX_BODY) throw new CutOffError(status, "response body too large");
      while (this.#len < size + 2) {
        if (!(await this.#fill())) throw new CutOffError(status, "connection closed in a chunk");
      }
      parts.push(this.#take(size));
      this.#take(2);
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

/** The status code of an `HTTP/1.0` or `HTTP/1.1` status line at the start of `s`. */
function statusOf(s: string): number | undefined {
  if (!s.startsWith("HTTP/1.") || s.length < 12) return undefined;
  const v = s.charCodeAt(7);
  if ((v !== 48 && v !== 49) || s.charCodeAt(8) !== 32) return undefined;
  let n = 0;
  for (let i = 9; i < 12; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return undefined;
    n = n * 10 + d;
  }
  return n;
}

const STATUS_PREFIX = encoder.encode("HTTP/1.");

/** {@linkcode statusOf} of the first 12 bytes of `buf`. */
function statusOfBytes(buf: Uint8Array): number | undefined {
  for (let i = 0; i < STATUS_PREFIX.length; i++) if (buf[i] !== STATUS_PREFIX[i]) return undefined;
  return statusOf(latin1.decode(buf.subarray(0, 12)));
}

/**
 * Keep-alive connections to one origin (`http://host:port` or `https://…`).
 * A connection carries one request at a time; up to `maxIdle` idle ones are
 * kept. The caller bounds the requests in flight.
 */
export class Http1Client {
  readonly #hostname: string;
  readonly #port: number;
  readonly #tls: boolean;
  readonly #hostHeader: string;
  readonly #maxIdle: number;
  #idle: Connection[] = [];
  #closed = false;

  constructor(origin: string, maxIdle: number) {
    const u = new URL(origin);
    this.#tls = u.protocol === "https:";
    this.#hostname = u.hostname.replace(/^\[|\]$/g, "");
    this.#port = u.port ? Number(u.port) : this.#tls ? 443 : 80;
    this.#hostHeader = u.host;
    this.#maxIdle = Math.max(1, maxIdle);
  }

  /**
   * Sends one request (`path` with its query, already encoded) and reads the
   * answer. `headers` must not contain `host`, `content-length` or
   * `connection`. Throws {@linkcode NoAnswerError} when no status line
   * arrived, {@linkcode CutOffError} when the answer broke off, or the
   * signal's reason once it aborts (the connection is then closed).
   */
  async request(
    method: string,
    path: string,
    headers: Record<string, string>,
    body: Uint8Array | undefined,
    signal: AbortSignal,
  ): Promise<Http1Response> {
    signal.throwIfAborted();
    if (this.#closed) throw new Error("the connection pool is closed");
    let head = `${method} ${path} HTTP/1.1\r\nhost: ${this.#hostHeader}\r\n`;
    for (const k in headers) {
      const v = headers[k]!;
      if (/[\r\n]/.test(v)) throw new TypeError(`header "${k}" contains a line break`);
      head += `${k}: ${v}\r\n`;
    }
    if (body !== undefined || method === "PUT" || method === "POST") {
      head += `content-length: ${body?.length ?? 0}\r\n`;
    }
    head += "\r\n";
    const c = this.#idle.pop() ?? await this.#connect(signal);
    if (signal.aborted) {
      // Aborted while connecting: the listener below would never fire.
      c.close();
      throw signal.reason;
    }
    const onAbort = () => c.close();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      const res = await c.send(head, body, method);
      if (!c.done && !this.#closed && this.#idle.length < this.#maxIdle) this.#idle.push(c);
      else c.close();
      return res;
    } catch (err) {
      c.close();
      if (signal.aborted) throw signal.reason;
      throw err;
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  async #connect(signal: AbortSignal): Promise<Connection> {
    try {
      const opts = { hostname: this.#hostname, port: this.#port, signal };
      const conn = this.#tls ? await Deno.connectTls(opts) : await Deno.connect(opts);
      if (!this.#tls) (conn as Deno.TcpConn).setNoDelay(true);
      return new Connection(conn);
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      throw new NoAnswerError(`cannot connect: ${(err as Error)?.message ?? err}`, {
        cause: err,
      });
    }
  }

  /** Closes every idle connection; later requests fail. */
  close(): void {
    this.#closed = true;
    for (const c of this.#idle) c.close();
    this.#idle = [];
  }
}

/** Whether the environment names an HTTP proxy (which only `fetch` honours). */
export function proxyConfigured(): boolean {
  for (const k of ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"]) {
    if (Deno.env.get(k)) return true;
  }
  return false;
}
