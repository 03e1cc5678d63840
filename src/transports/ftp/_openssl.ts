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
 * - {@linkcode loadOpenSsl} returns the library or a reason why it cannot be
 *   used (not installed, no `--allow-ffi`), never throws.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { isIP, type Socket } from "node:net";
import { Duplex } from "node:stream";

const SSL_SYMBOLS = {
  OpenSSL_version_num: { parameters: [], result: "u64" },
  TLS_client_method: { parameters: [], result: "pointer" },
  SSL_CTX_new: { parameters: ["pointer"], result: "pointer" },
  SSL_CTX_free: { parameters: ["pointer"], result: "void" },
  SSL_CTX_ctrl: { parameters: ["pointer", "i32", "i64", "pointer"], result: "i64" },
  SSL_CTX_set_options: { parameters: ["pointer", "u64"], result: "u64" },
  SSL_CTX_set_verify: { parameters: ["pointer", "i32", "pointer"], result: "void" },
  SSL_CTX_set_default_verify_paths: { parameters: ["pointer"], result: "i32" },
  SSL_CTX_load_verify_locations: { parameters: ["pointer", "buffer", "pointer"], result: "i32" },
  SSL_new: { parameters: ["pointer"], result: "pointer" },
  SSL_free: { parameters: ["pointer"], result: "void" },
  SSL_set_bio: { parameters: ["pointer", "pointer", "pointer"], result: "void" },
  SSL_set_connect_state: { parameters: ["pointer"], result: "void" },
  SSL_do_handshake: { parameters: ["pointer"], result: "i32" },
  SSL_read: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  SSL_write: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  SSL_get_error: { parameters: ["pointer", "i32"], result: "i32" },
  SSL_shutdown: { parameters: ["pointer"], result: "i32" },
  SSL_ctrl: { parameters: ["pointer", "i32", "i64", "pointer"], result: "i64" },
  SSL_set1_host: { parameters: ["pointer", "buffer"], result: "i32" },
  SSL_get0_param: { parameters: ["pointer"], result: "pointer" },
  SSL_get1_session: { parameters: ["pointer"], result: "pointer" },
  SSL_set_session: { parameters: ["pointer", "pointer"], result: "i32" },
  SSL_SESSION_free: { parameters: ["pointer"], result: "void" },
  SSL_session_reused: { parameters: ["pointer"], result: "i32" },
  SSL_get_verify_result: { parameters: ["pointer"], result: "i64" },
  SSL_get1_peer_certificate: { parameters: ["pointer"], result: "pointer", optional: true },
  SSL_get_peer_certificate: { parameters: ["pointer"], result: "pointer", optional: true },
  SSL_get_version: { parameters: ["pointer"], result: "pointer" },
  SSL_get_current_cipher: { parameters: ["pointer"], result: "pointer" },
  SSL_CIPHER_get_name: { parameters: ["pointer"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

const CRYPTO_SYMBOLS = {
  BIO_s_mem: { parameters: [], result: "pointer" },
  BIO_new: { parameters: ["pointer"], result: "pointer" },
  BIO_free: { parameters: ["pointer"], result: "i32" },
  BIO_write: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  BIO_read: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  BIO_ctrl: { parameters: ["pointer", "i32", "i64", "pointer"], result: "i64" },
  BIO_ctrl_pending: { parameters: ["pointer"], result: "usize" },
  X509_free: { parameters: ["pointer"], result: "void" },
  i2d_X509: { parameters: ["pointer", "buffer"], result: "i32" },
  X509_verify_cert_error_string: { parameters: ["i64"], result: "pointer" },
  X509_VERIFY_PARAM_set1_ip_asc: { parameters: ["pointer", "buffer"], result: "i32" },
  ERR_get_error: { parameters: [], result: "u64" },
  ERR_error_string_n: { parameters: ["u64", "buffer", "usize"], result: "void" },
  ERR_clear_error: { parameters: [], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

type Ssl = Deno.DynamicLibrary<typeof SSL_SYMBOLS>["symbols"];
type Crypto = Deno.DynamicLibrary<typeof CRYPTO_SYMBOLS>["symbols"];

// OpenSSL constants (ssl.h, bio.h).
const SSL_ERROR_WANT_READ = 2;
const SSL_ERROR_WANT_WRITE = 3;
const SSL_ERROR_ZERO_RETURN = 6;
const SSL_VERIFY_NONE = 0;
const SSL_VERIFY_PEER = 1;
const SSL_CTRL_SET_TLSEXT_HOSTNAME = 55;
const SSL_CTRL_SET_MIN_PROTO_VERSION = 123;
const SSL_CTRL_SET_MAX_PROTO_VERSION = 124;
const SSL_OP_NO_TICKET = 1n << 14n;
const SSL_CTRL_SET_SESS_CACHE_MODE = 44;
const SSL_SESS_CACHE_CLIENT = 1;
const TLS1_2_VERSION = 0x0303;
const BIO_C_SET_BUF_MEM_EOF_RETURN = 130;

/**
 * Library file names tried in order (OpenSSL 3, then 1.1). Linux and macOS
 * (Homebrew) only: the signatures above use 64-bit `long`, which Windows
 * does not have.
 */
const CANDIDATES: readonly (readonly [string, string])[] = Deno.build.os === "darwin"
  ? [
    [
      "/opt/homebrew/opt/openssl@3/lib/libssl.3.dylib",
      "/opt/homebrew/opt/openssl@3/lib/libcrypto.3.dylib",
    ],
    [
      "/usr/local/opt/openssl@3/lib/libssl.3.dylib",
      "/usr/local/opt/openssl@3/lib/libcrypto.3.dylib",
    ],
  ]
  : Deno.build.os === "windows"
  ? []
  : [["libssl.so.3", "libcrypto.so.3"], ["libssl.so.1.1", "libcrypto.so.1.1"]];

/** The loaded library, shared by every context. */
export interface OpenSsl {
  readonly ssl: Ssl;
  readonly crypto: Crypto;
  /** File name of the loaded libssl, for messages. */
  readonly name: string;
}

let loaded: OpenSsl | string | undefined;

/**
 * Loads the system's libssl once. Returns the library, or a sentence saying
 * why it cannot be used.
 */
export function loadOpenSsl(): OpenSsl | string {
  if (loaded !== undefined) return loaded;
  if (typeof Deno?.dlopen !== "function") {
    return loaded = "this runtime has no foreign function interface (Deno.dlopen)";
  }
  if (CANDIDATES.length === 0) {
    return loaded = `loading OpenSSL is not supported on ${Deno.build.os}`;
  }
  const reasons: string[] = [];
  for (const [sslName, cryptoName] of CANDIDATES) {
    let crypto: Deno.DynamicLibrary<typeof CRYPTO_SYMBOLS> | undefined;
    try {
      crypto = Deno.dlopen(cryptoName, CRYPTO_SYMBOLS);
      const ssl = Deno.dlopen(sslName, SSL_SYMBOLS);
      if (!ssl.symbols.SSL_get1_peer_certificate && !ssl.symbols.SSL_get_peer_certificate) {
        ssl.close();
        throw new Error("no SSL_get1_peer_certificate");
      }
      return loaded = { ssl: ssl.symbols, crypto: crypto.symbols, name: sslName };
    } catch (err) {
      crypto?.close();
      if (err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied) {
        return loaded = "the process may not load native libraries (run Deno with --allow-ffi)";
      }
      reasons.push(`${sslName}: ${(err as Error).message.split("\n")[0]}`);
    }
  }
  return loaded = `the system's OpenSSL library is not available (${reasons.join("; ")})`;
}

function cstr(text: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(text + "\0");
}

function readCString(ptr: Deno.PointerValue): string {
  return ptr === null ? "" : Deno.UnsafePointerView.getCString(ptr);
}

/** Drains OpenSSL's error queue into one line. */
function errorQueue(lib: OpenSsl): string {
  const parts: string[] = [];
  const buf = new Uint8Array(256);
  for (let i = 0; i < 8; i++) {
    const e = lib.crypto.ERR_get_error();
    if (BigInt(e) === 0n) break;
    lib.crypto.ERR_error_string_n(e, buf, BigInt(buf.length));
    const text = new TextDecoder().decode(buf.subarray(0, buf.indexOf(0)));
    // "error:0A000086:SSL routines::certificate verify failed" → the reason.
    parts.push(text.split(":").slice(4).join(":") || text);
  }
  lib.crypto.ERR_clear_error();
  return parts.join("; ");
}

/** How a context verifies the server. */
export interface SslContextOptions {
  /** PEM file with the CA (or self-signed) certificates to trust instead of the system's. */
  caFile?: string;
  /** Verify the certificate chain and the host name (false: the caller pins or skips). */
  verify: boolean;
}

/** An `SSL_CTX`: the verification settings shared by a server's connections. */
export class SslContext {
  readonly lib: OpenSsl;
  readonly verify: boolean;
  #ctx: Deno.PointerValue;

  constructor(lib: OpenSsl, opts: SslContextOptions) {
    this.lib = lib;
    this.verify = opts.verify;
    const { ssl } = lib;
    const ctx = ssl.SSL_CTX_new(ssl.TLS_client_method());
    if (ctx === null) throw new Error(`OpenSSL cannot create a TLS context: ${errorQueue(lib)}`);
    this.#ctx = ctx;
    // TLS 1.2 with session IDs and no tickets: one session that every data
    // connection can resume, as FTPS servers expect. TLS 1.3 sessions are
    // single-use tickets on many servers (ProFTPD), and a data connection
    // that only uploads brings no new one, so the next transfer would fail.
    ssl.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, BigInt(TLS1_2_VERSION), null);
    ssl.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MAX_PROTO_VERSION, BigInt(TLS1_2_VERSION), null);
    ssl.SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    ssl.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_SESS_CACHE_MODE, BigInt(SSL_SESS_CACHE_CLIENT), null);
    ssl.SSL_CTX_set_verify(ctx, opts.verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, null);
    const ok = opts.caFile !== undefined
      ? ssl.SSL_CTX_load_verify_locations(ctx, cstr(opts.caFile), null)
      : ssl.SSL_CTX_set_default_verify_paths(ctx);
    if (ok !== 1) {
      const why = errorQueue(lib);
      this.free();
      throw new Error(
        opts.caFile !== undefined
          ? `cannot load ca "${opts.caFile}": ${why}`
          : `cannot load the system's CA certificates: ${why}`,
      );
    }
  }

  /** The raw `SSL_CTX*` (null once freed). */
  get pointer(): Deno.PointerValue {
    return this.#ctx;
  }

  /** Releases the context; connections still open keep their own reference. */
  free(): void {
    if (this.#ctx !== null) this.lib.ssl.SSL_CTX_free(this.#ctx);
    this.#ctx = null;
  }
}

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
