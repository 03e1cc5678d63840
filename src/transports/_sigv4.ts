/**
 * AWS Signature Version 4 for S3 requests sent in the Authorization header:
 * the canonical request, the string to sign and the signature, with the
 * signing key cached per day. S3's rules: the path is encoded once (not
 * twice as for other services) and the payload hash is sent in
 * `x-amz-content-sha256`.
 *
 * @module
 */
import type { Buffer } from "node:buffer";
import { createHash, createHmac } from "node:crypto";

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
 * ```
 */
export class SigV4Signer {
  readonly #creds: SigV4Credentials;
  readonly #region: string;
  readonly #service: string;
  #keyDay = "";
  #key: Buffer | undefined;

  constructor(credentials: SigV4Credentials, region: string, service = "s3") {
    this.#creds = credentials;
    this.#region = region;
    this.#service = service;
  }

  #signingKey(day: string): Buffer {
    if (this.#key && this.#keyDay === day) return this.#key;
    const h = (key: string | Buffer, data: string) =>
      createHmac("sha256", key).update(data).digest();
    const k = h(
      h(h(h("AWS4" + this.#creds.secretAccessKey, day), this.#region), this.#service),
      "aws4_request",
    );
    this.#key = k;
    this.#keyDay = day;
    return k;
  }

  /**
   * Returns the headers to send: the request's (names in lower case) plus
   * `x-amz-date`, `x-amz-content-sha256`, `x-amz-security-token` (with a
   * session token) and `authorization`.
   */
  sign(req: SigV4Request, now: Date = new Date()): Record<string, string> {
    const date = amzDate(now);
    const day = date.slice(0, 8);
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) out[k.toLowerCase()] = v;
    out.host = req.host;
    out["x-amz-date"] = date;
    out["x-amz-content-sha256"] = req.payloadHash;
    if (this.#creds.sessionToken) out["x-amz-security-token"] = this.#creds.sessionToken;
    const names = Object.keys(out).sort();
    let canonicalHeaders = "";
    for (const n of names) {
      canonicalHeaders += `${n}:${out[n]!.trim().replace(/\s+/g, " ")}\n`;
    }
    const signedHeaders = names.join(";");
    const query = req.query ? canonicalQuery(req.query) : "";
    const canonical =
      `${req.method}\n${req.path}\n${query}\n${canonicalHeaders}\n${signedHeaders}\n${req.payloadHash}`;
    const scope = `${day}/${this.#region}/${this.#service}/aws4_request`;
    const toSign = `AWS4-HMAC-SHA256\n${date}\n${scope}\n${
      createHash("sha256").update(canonical).digest("hex")
    }`;
    const signature = createHmac("sha256", this.#signingKey(day)).update(toSign).digest("hex");
    out.authorization =
      `AWS4-HMAC-SHA256 Credential=${this.#creds.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
    return out;
  }
}
