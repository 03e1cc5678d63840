/**
 * A TLS client socket driven through the system's OpenSSL (`libssl`) with
 * `Deno.dlopen`, for FTPS servers that require data connections to resume
 * the control connection's TLS session. Deno's own TLS (rustls) cannot
 * resume a session it did not create, and cannot hand its session to
 * another connection; OpenSSL can (`SSL_get1_session`/`SSL_set_session`).
 *
 * OpenSSL never touches the network here: it reads from and writes to two
 * memory BIOs, and {@linkcode SslSocket} moves the bytes between them and a
 * `node:net` socket. Every FFI call is therefore non-blocking and short.
 *
 * Contract:
 * - Certificates are verified unless the caller asks otherwise: against the
 *   given CA file, or OpenSSL's default trust store (the system's CA
 *   certificates); the host name (or IP address) must match the
 *   certificate.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { isIP, type Socket } from "node:net";
import { Duplex } from "node:stream";
import {
  BIO_C_SET_BUF_MEM_EOF_RETURN,
  cstr,
  errorQueue,
  type OpenSsl,
  readCString,
  SSL_CTRL_SET_TLSEXT_HOSTNAME,
  SSL_ERROR_WANT_READ,
  SSL_ERROR_WANT_WRITE,
  SSL_ERROR_ZERO_RETURN,
  type SslContext,
} from "./_libssl.ts";

/** Options of one TLS connection. */
export interface SslSocketOptions {
  context: SslContext;
  /** Host name or IP address the certificate must be valid for (also sent as SNI). */
  host: string;
  /** Resume this connection's TLS session (FTP data connections: the control connection). */
  resumeFrom?: SslSocket;
}

/** Shared buffer for `SSL_read`: every call is synchronous, so one is enough. */
const READ_BUF = new Uint8Array(64 * 1024);

/**
 * A TLS client connection over a connected (or connecting) `node:net`
 * socket, shaped like a `tls.TLSSocket` where basic-ftp and the FTP
 * transport look: `encrypted`, `getCipher()` (undefined until the
 * handshake is done), the `secureConnect` event, `getPeerCertificate()`
 * (`fingerprint256` only), the address getters and the timeout, keep-alive
 * and no-delay setters. The handshake starts as soon as the TCP connection
 * is up; writes wait for it.
 */
export class SslSocket extends Duplex {
  /** Marks a TLS socket (basic-ftp's `hasTLS` tests `"encrypted" in socket`). */
  readonly encrypted = true;
  readonly #lib: OpenSsl;
  readonly #raw: Socket;
  #ssl: Deno.PointerValue;
  #rbio: Deno.PointerValue;
  #wbio: Deno.PointerValue;
  #secure = false;
  #readEnded = false;
  #queued: { chunk: Buffer; cb: (err?: Error | null) => void }[] = [];
  // deno-lint-ignore no-explicit-any
  #listeners: [string, (...args: any[]) => void][] = [];

  constructor(raw: Socket, opts: SslSocketOptions) {
    super({ allowHalfOpen: false });
    const lib = opts.context.lib;
    this.#lib = lib;
    this.#raw = raw;
    // TLS records are binary: a text decoding left from the plain FTP phase
    // (basic-ftp sets one on its control socket) would corrupt them.
    const state = (raw as unknown as { _readableState?: { decoder: unknown; encoding: unknown } })
      ._readableState;
    if (state?.decoder) {
      state.decoder = null;
      state.encoding = null;
    }
    const { ssl, crypto } = lib;
    const s = ssl.SSL_new(opts.context.pointer);
    if (s === null) throw new Error(`OpenSSL cannot create a connection: ${errorQueue(lib)}`);
    this.#ssl = s;
    this.#rbio = crypto.BIO_new(crypto.BIO_s_mem());
    this.#wbio = crypto.BIO_new(crypto.BIO_s_mem());
    // An empty read BIO means "wait for more", not end of file.
    crypto.BIO_ctrl(this.#rbio, BIO_C_SET_BUF_MEM_EOF_RETURN, -1n, null);
    crypto.BIO_ctrl(this.#wbio, BIO_C_SET_BUF_MEM_EOF_RETURN, -1n, null);
    ssl.SSL_set_bio(s, this.#rbio, this.#wbio);
    ssl.SSL_set_connect_state(s);
    const ip = isIP(opts.host) !== 0;
    if (!ip) {
      const name = cstr(opts.host);
      ssl.SSL_ctrl(s, SSL_CTRL_SET_TLSEXT_HOSTNAME, 0n, Deno.UnsafePointer.of(name));
    }
    if (opts.context.verify) {
      const ok = ip
        ? crypto.X509_VERIFY_PARAM_set1_ip_asc(ssl.SSL_get0_param(s), cstr(opts.host))
        : ssl.SSL_set1_host(s, cstr(opts.host));
      if (ok !== 1) {
        this.#free();
        throw new Error(`OpenSSL cannot check the host name "${opts.host}": ${errorQueue(lib)}`);
      }
    }
    const from = opts.resumeFrom;
    if (from !== undefined && from.#ssl !== null) {
      const session = ssl.SSL_get1_session(from.#ssl);
      if (session !== null) {
        ssl.SSL_set_session(s, session);
        ssl.SSL_SESSION_free(session);
      }
    }
    this.#attach();
    if (raw.readyState === "open") queueMicrotask(() => this.#handshake());
    else raw.once("connect", () => this.#handshake());
  }

  /**
   * (Re)attaches the listeners on the TCP socket. basic-ftp removes every
   * listener of the plain control socket when it is replaced by its TLS
   * upgrade, so the upgrade calls this after the swap.
   */
  attach(): void {
    this.#attach();
  }

  #attach(): void {
    for (const [event, fn] of this.#listeners) this.#raw.off(event, fn);
    this.#listeners = [
      ["data", (d: Buffer) => this.#feed(d)],
      ["end", () => this.#onEnd()],
      ["error", (err: Error) => this.destroy(err)],
      ["close", () => this.destroy()],
      ["timeout", () => this.emit("timeout")],
    ];
    for (const [event, fn] of this.#listeners) this.#raw.on(event, fn);
  }

  get remoteAddress(): string | undefined {
    return this.#raw.remoteAddress;
  }
  get remotePort(): number | undefined {
    return this.#raw.remotePort;
  }
  get localAddress(): string | undefined {
    return this.#raw.localAddress;
  }
  get localPort(): number | undefined {
    return this.#raw.localPort;
  }

  setTimeout(ms: number, cb?: () => void): this {
    this.#raw.setTimeout(ms);
    if (cb) this.once("timeout", cb);
    return this;
  }
  setNoDelay(noDelay?: boolean): this {
    this.#raw.setNoDelay(noDelay);
    return this;
  }
  setKeepAlive(enable?: boolean, delay?: number): this {
    this.#raw.setKeepAlive(enable, delay);
    return this;
  }

  /** Protocol and cipher once the handshake is done, undefined before. */
  getCipher(): { name: string; version: string } | undefined {
    if (!this.#secure || this.#ssl === null) return undefined;
    const { ssl } = this.#lib;
    return {
      name: readCString(ssl.SSL_CIPHER_get_name(ssl.SSL_get_current_cipher(this.#ssl))),
      version: readCString(ssl.SSL_get_version(this.#ssl)),
    };
  }

  /** Whether the handshake resumed the session it was given. */
  get sessionReused(): boolean {
    return this.#ssl !== null && this.#lib.ssl.SSL_session_reused(this.#ssl) === 1;
  }

  /** The server certificate's SHA-256 fingerprint (`AB:CD:…`) and DER bytes. */
  getPeerCertificate(): { fingerprint256?: string; raw?: Buffer } {
    if (this.#ssl === null) return {};
    const { ssl, crypto } = this.#lib;
    const get = ssl.SSL_get1_peer_certificate ?? ssl.SSL_get_peer_certificate;
    const cert = get!(this.#ssl);
    if (cert === null) return {};
    try {
      const len = crypto.i2d_X509(cert, null);
      if (len <= 0) return {};
      const der = new Uint8Array(len);
      // i2d_X509 writes through `unsigned char **` and advances it.
      const pp = new BigUint64Array([BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(der)))]);
      crypto.i2d_X509(cert, pp);
      const raw = Buffer.from(der);
      const hex = createHash("sha256").update(raw).digest("hex").toUpperCase();
      return { fingerprint256: hex.match(/../g)!.join(":"), raw };
    } finally {
      crypto.X509_free(cert);
    }
  }

  // -- TLS state machine ------------------------------------------------------

  #handshake(): void {
    if (this.#ssl === null || this.#secure || this.destroyed) return;
    const { ssl } = this.#lib;
    const r = ssl.SSL_do_handshake(this.#ssl);
    if (r === 1) {
      this.#secure = true;
      this.#flush();
      this.emit("secureConnect");
      const queued = this.#queued;
      this.#queued = [];
      for (const q of queued) this.#writeNow(q.chunk, q.cb);
      this.#readAll();
      return;
    }
    const e = ssl.SSL_get_error(this.#ssl, r);
    this.#flush();
    if (e === SSL_ERROR_WANT_READ || e === SSL_ERROR_WANT_WRITE) return;
    this.destroy(this.#error("TLS handshake failed"));
  }

  #error(what: string): Error {
    const { ssl, crypto } = this.#lib;
    const queue = errorQueue(this.#lib);
    let text = queue || "the connection was closed";
    if (this.#ssl !== null) {
      const v = Number(ssl.SSL_get_verify_result(this.#ssl));
      if (v !== 0) {
        text = `certificate verify failed: ${
          readCString(crypto.X509_verify_cert_error_string(BigInt(v)))
        }`;
      }
    }
    const err = new Error(`${what}: ${text}`) as Error & { code: string };
    err.code = "ERR_SSL";
    return err;
  }

  #feed(data: Buffer): void {
    if (this.#ssl === null) return;
    const { crypto } = this.#lib;
    let off = 0;
    while (off < data.length) {
      const n = crypto.BIO_write(this.#rbio, data.subarray(off), data.length - off);
      if (n <= 0) {
        this.destroy(this.#error("TLS read failed"));
        return;
      }
      off += n;
    }
    if (!this.#secure) this.#handshake();
    else this.#readAll();
  }

  #readAll(): void {
    const { ssl } = this.#lib;
    while (this.#ssl !== null && !this.#readEnded) {
      const n = ssl.SSL_read(this.#ssl, READ_BUF, READ_BUF.length);
      if (n > 0) {
        if (!this.push(Buffer.from(READ_BUF.subarray(0, n)))) this.#raw.pause();
        continue;
      }
      const e = ssl.SSL_get_error(this.#ssl, n);
      this.#flush(); // post-handshake messages (session tickets, key updates) may want answers
      if (e === SSL_ERROR_WANT_READ || e === SSL_ERROR_WANT_WRITE) return;
      if (e === SSL_ERROR_ZERO_RETURN) {
        // close_notify: the peer finished sending.
        this.#readEnded = true;
        this.push(null);
        return;
      }
      this.destroy(this.#error("TLS read failed"));
      return;
    }
  }

  #onEnd(): void {
    if (this.#readEnded) return;
    this.#readEnded = true;
    if (!this.#secure) {
      this.destroy(this.#error("TLS handshake failed"));
      return;
    }
    this.push(null);
  }

  /** Moves everything OpenSSL wrote into the TCP socket; false when it is full. */
  #flush(): boolean {
    if (this.#ssl === null) return true;
    const { crypto } = this.#lib;
    let ok = true;
    for (;;) {
      const pending = Number(crypto.BIO_ctrl_pending(this.#wbio));
      if (pending <= 0) return ok;
      const out = Buffer.allocUnsafe(pending);
      const n = crypto.BIO_read(this.#wbio, out, pending);
      if (n <= 0) return ok;
      if (this.#raw.writable) ok = this.#raw.write(n === pending ? out : out.subarray(0, n));
    }
  }

  #writeNow(chunk: Buffer, cb: (err?: Error | null) => void): void {
    if (this.#ssl === null) {
      cb(new Error("TLS connection closed"));
      return;
    }
    const { ssl } = this.#lib;
    let off = 0;
    while (off < chunk.length) {
      const n = ssl.SSL_write(this.#ssl, chunk.subarray(off), chunk.length - off);
      if (n <= 0) {
        cb(this.#error("TLS write failed"));
        return;
      }
      off += n;
    }
    if (this.#flush()) cb();
    else this.#raw.once("drain", () => cb());
  }

  // -- Duplex -----------------------------------------------------------------

  override _read(): void {
    if (this.#raw.isPaused()) this.#raw.resume();
  }

  override _write(
    chunk: Buffer | string,
    encoding: BufferEncoding,
    cb: (err?: Error | null) => void,
  ): void {
    const buf = typeof chunk === "string" ? Buffer.from(chunk, encoding) : chunk;
    if (!this.#secure) this.#queued.push({ chunk: buf, cb });
    else this.#writeNow(buf, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.#ssl !== null && this.#secure) {
      // close_notify, so that the server knows the upload is complete, not cut off.
      this.#lib.ssl.SSL_shutdown(this.#ssl);
      this.#flush();
    }
    if (!this.#raw.writable) cb();
    else this.#raw.end(() => cb());
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    for (const [event, fn] of this.#listeners) this.#raw.off(event, fn);
    this.#listeners = [];
    this.#raw.on("error", () => {});
    this.#raw.destroy();
    this.#free();
    for (const q of this.#queued) q.cb(err ?? new Error("TLS connection closed"));
    this.#queued = [];
    cb(err);
  }

  #free(): void {
    const { ssl } = this.#lib;
    // SSL_free frees both BIOs attached with SSL_set_bio.
    if (this.#ssl !== null) ssl.SSL_free(this.#ssl);
    this.#ssl = null;
    this.#rbio = null;
    this.#wbio = null;
  }
}
