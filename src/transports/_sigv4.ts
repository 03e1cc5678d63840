/**
 * AWS Signature Version 4 for S3 requests sent in the Authorization header:
 * the canonical request, the string to sign and the signature, with the
 * signing key cached per day. S3's rules: the path is encoded once (not
 * twice as for other services) and the payload hash is sent in
 * `x-amz-content-sha256`.
 *
 * Per request this costs two one-shot SHA-256 calls plus one HMAC made of
 * two more (see {@linkcode HmacSha256}); `node:crypto`'s `createHmac` and
 * `createHash` objects cost several times the hashing of these few hundred
 * bytes, and signing is done for every small PUT.
 *
 * @module
 */
import { createHmac, hash } from "node:crypto";

/** Payload hash meaning "the body is not part of the signature". */
export const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";

/** Static credentials. */
export interface SigV4Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** One request to sign. */
export interface SigV4Request {
  method: string;
  /** Host header value (with the port when it is not the default). */
  host: string;
  /** The path, already percent-encoded (RFC 3986), starting with `/`. */
  path: string;
  /** Query parameters (unencoded); none for most object requests. */
  query?: Record<string, string>;
  /** Headers to send and sign (any case; values are trimmed). */
  headers: Record<string, string>;
  /** Hex SHA-256 of the body, or {@linkcode UNSIGNED_PAYLOAD}. */
  payloadHash: string;
}

function rfc3986(s: string): string {
  return encodeURIComponent(s).replace(
    /[!'()*]/g,
    (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase(),
  );
}

/** Query parameters encoded (RFC 3986) and sorted: the canonical form, also fine to send. */
export function canonicalQuery(query: Record<string, string>): string {
  return Object.entries(query)
    .map(([k, v]) => [rfc3986(k), rfc3986(v)] as const)
    .sort(([a, x], [b, y]) => a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0)
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
}

const encoder = new TextEncoder();
/** The value of each hex digit's character code (lower case, as `hash(…, "hex")` writes). */
const HEX_VALUE = new Uint8Array(128);
for (let i = 0; i < 16; i++) HEX_VALUE["0123456789abcdef".charCodeAt(i)] = i;

/**
 * HMAC-SHA-256 (RFC 2104) under one fixed key, as two one-shot SHA-256
 * calls over the key's inner and outer pads, which are computed once.
 */
export class HmacSha256 {
  /** The inner pad followed by room for the message. */
  #inner: Uint8Array<ArrayBuffer>;
  /** The outer pad followed by the inner digest. */
  readonly #outer = new Uint8Array(64 + 32);

  /** `key`: any length (longer than the 64-byte block, it is hashed first, as RFC 2104 says). */
  constructor(key: Uint8Array) {
    const k = key.length > 64 ? new Uint8Array(hash("sha256", key, "buffer")) : key;
    this.#inner = new Uint8Array(64 + 512);
    for (let i = 0; i < 64; i++) {
      const b = i < k.length ? k[i]! : 0;
      this.#inner[i] = b ^ 0x36;
      this.#outer[i] = b ^ 0x5c;
    }
  }

  /** The hex HMAC of `message` (as UTF-8). */
  hex(message: string): string {
    if (this.#inner.length < 64 + message.length * 3) {
      const bigger = new Uint8Array(64 + message.length * 3);
      bigger.set(this.#inner.subarray(0, 64));
      this.#inner = bigger;
    }
    const n = encoder.encodeInto(message, this.#inner.subarray(64)).written;
    const inner = hash("sha256", this.#inner.subarray(0, 64 + n), "hex");
    const out = this.#outer;
    for (let i = 0; i < 32; i++) {
      out[64 + i] = (HEX_VALUE[inner.charCodeAt(2 * i)]! << 4) |
        HEX_VALUE[inner.charCodeAt(2 * i + 1)]!;
    }
    return hash("sha256", out, "hex");
  }
}

/** A value with a run of white space or a tab/line break, which SigV4 folds to one space. */
const FOLD = /\s\s|[^\S ]/;

/** `20130524T000000Z` from a date. */
export function amzDate(d: Date): string {
  const s = d.toISOString(); // 2013-05-24T00:00:00.000Z (years 0–9999)
  return s.slice(0, 4) + s.slice(5, 7) + s.slice(8, 13) + s.slice(14, 16) + s.slice(17, 19) + "Z";
}

/**
 * Signs S3 requests for one region and set of credentials.
 *
 * @example
 * ```ts
 * import { SigV4Signer, UNSIGNED_PAYLOAD } from "./_sigv4.ts";
 * const signer = new SigV4Signer({ accessKeyId: "AK", secretAccessKey: "SK" }, "us-east-1");
 * const headers = signer.sign({
 *   method: "HEAD", host: "s3.example.com", path: "/bucket/key", headers: {},
 *   payloadHash: UNSIGNED_PAYLOAD,
 * });
 * // headers: the request's headers plus authorization, x-amz-date, x-amz-content-sha256
 * // (host is signed, not returned)
 * ```
 */
export class SigV4Signer {
  readonly #creds: SigV4Credentials;
  readonly #region: string;
  readonly #service: string;
  /** The day (`20130524`) the cached key and scope are for. */
  #day = "";
  #hmac: HmacSha256 | undefined;
  #scope = "";
  /** The second (`Date.now() / 1000`, floored) `#date` is for. */
  #second = NaN;
  #date = "";

  constructor(credentials: SigV4Credentials, region: string, service = "s3") {
    this.#creds = credentials;
    this.#region = region;
    this.#service = service;
  }

  /** The HMAC under the day's signing key, derived once per day. */
  #signingKey(day: string): HmacSha256 {
    if (this.#hmac && this.#day === day) return this.#hmac;
    const h = (key: string | Uint8Array, data: string) =>
      createHmac("sha256", key).update(data).digest();
    const k = h(
      h(h(h("AWS4" + this.#creds.secretAccessKey, day), this.#region), this.#service),
      "aws4_request",
    );
    this.#hmac = new HmacSha256(k);
    this.#scope = `${day}/${this.#region}/${this.#service}/aws4_request`;
    this.#day = day;
    return this.#hmac;
  }

  /**
   * Returns the headers to send: the request's (names in lower case) plus
   * `x-amz-date`, `x-amz-content-sha256`, `x-amz-security-token` (with a
   * session token) and `authorization`. `host` is signed but not returned:
   * the sender writes it from the URL.
   */
  sign(req: SigV4Request, now: Date = new Date()): Record<string, string> {
    const second = Math.floor(now.getTime() / 1000);
    if (second !== this.#second) {
      this.#second = second;
      this.#date = amzDate(now);
    }
    const date = this.#date;
    const hmac = this.#signingKey(date.slice(0, 8));
    const out: Record<string, string> = {};
    for (const k in req.headers) {
      const name = k.toLowerCase();
      if (name !== "host") out[name] = req.headers[k]!;
    }
    out["x-amz-date"] = date;
    out["x-amz-content-sha256"] = req.payloadHash;
    if (this.#creds.sessionToken) out["x-amz-security-token"] = this.#creds.sessionToken;
    // Host is signed without being put into `out` (deleting it again would slow every later
    // use of the object).
    const names = Object.keys(out);
    names.push("host");
    names.sort();
    let canonicalHeaders = "";
    for (const n of names) {
      const v = (n === "host" ? req.host : out[n]!).trim();
      canonicalHeaders += `${n}:${FOLD.test(v) ? v.replace(/\s+/g, " ") : v}\n`;
    }
    const signedHeaders = names.join(";");
    const query = req.query ? canonicalQuery(req.query) : "";
    const canonical =
      `${req.method}\n${req.path}\n${query}\n${canonicalHeaders}\n${signedHeaders}\n${req.payloadHash}`;
    const scope = this.#scope;
    const signature = hmac.hex(
      `AWS4-HMAC-SHA256\n${date}\n${scope}\n${hash("sha256", canonical, "hex")}`,
    );
    out.authorization =
      `AWS4-HMAC-SHA256 Credential=${this.#creds.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
    return out;
  }
}
