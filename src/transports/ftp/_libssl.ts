/**
 * The system's OpenSSL (`libssl`, `libcrypto`) through `Deno.dlopen`: the
 * symbols the FTPS client needs, the loader and the `SSL_CTX` wrapper.
 * {@linkcode loadOpenSsl} returns the library or a reason why it cannot be
 * used (not installed, no `--allow-ffi`), never throws. See
 * `_ssl_socket.ts` for the connection itself.
 *
 * @module
 */
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

// OpenSSL constants (ssl.h, bio.h); the exported ones are used by _ssl_socket.ts.
export const SSL_ERROR_WANT_READ = 2;
export const SSL_ERROR_WANT_WRITE = 3;
export const SSL_ERROR_ZERO_RETURN = 6;
const SSL_VERIFY_NONE = 0;
const SSL_VERIFY_PEER = 1;
export const SSL_CTRL_SET_TLSEXT_HOSTNAME = 55;
const SSL_CTRL_SET_MIN_PROTO_VERSION = 123;
const SSL_CTRL_SET_MAX_PROTO_VERSION = 124;
const SSL_OP_NO_TICKET = 1n << 14n;
const SSL_CTRL_SET_SESS_CACHE_MODE = 44;
const SSL_SESS_CACHE_CLIENT = 1;
const TLS1_2_VERSION = 0x0303;
export const BIO_C_SET_BUF_MEM_EOF_RETURN = 130;

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

export function cstr(text: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(text + "\0");
}

export function readCString(ptr: Deno.PointerValue): string {
  return ptr === null ? "" : Deno.UnsafePointerView.getCString(ptr);
}

/** Drains OpenSSL's error queue into one line. */
export function errorQueue(lib: OpenSsl): string {
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
