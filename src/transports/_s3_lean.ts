/**
 * The lean request path of the S3 client for single small requests
 * (PutObject of bytes in memory, HeadObject, DeleteObject, CopyObject):
 * `fetch` on one pooled keep-alive HTTP client, signed with SigV4 here. It
 * costs a fraction of the AWS SDK's middleware stack per request; the SDK
 * stays for multipart uploads, streamed bodies, listings and the credential
 * chain. Errors come out in the SDK's shape (`name`/`Code`,
 * `$metadata.httpStatusCode`, `$fault`), so one classification serves both.
 *
 * @module
 */
import { crc32 } from "node:zlib";
import { Semaphore } from "../util/semaphore.ts";
import {
  CutOffError,
  type HeaderMap,
  Http1Client,
  NoAnswerError,
  proxyConfigured,
} from "./_http1.ts";
import { encodePath } from "./paths.ts";
import { canonicalQuery, type SigV4Credentials, SigV4Signer, UNSIGNED_PAYLOAD } from "./_sigv4.ts";

/** Where the bucket is and how to reach it. */
export interface LeanTarget {
  /** S3-compatible endpoint; AWS (`https://s3.<region>.amazonaws.com`) without it. */
  endpoint?: string;
  bucket: string;
  region: string;
  forcePathStyle: boolean;
  credentials: SigV4Credentials;
  /** Most requests in flight (and idle connections kept). */
  maxConnections: number;
}

/** A refused or unreadable answer, shaped like the SDK's service errors. */
export class LeanS3Error extends Error {
  /** The S3 error code from the body, when there was one. */
  readonly Code?: string;
  readonly $metadata: { httpStatusCode: number };
  /** "client" or "server" once the answer was read in full; unset when it was cut off. */
  readonly $fault?: "client" | "server";

  constructor(status: number, code: string | undefined, message: string, read: boolean) {
    super(message || code || `HTTP ${status}`);
    this.name = code ?? STATUS_NAMES[status] ?? "UnknownError";
    if (code) this.Code = code;
    this.$metadata = { httpStatusCode: status };
    if (read) this.$fault = status >= 500 ? "server" : "client";
  }
}

/** What the SDK names a bodiless refusal (HEAD, or a server that sends no XML). */
const STATUS_NAMES: Record<number, string> = {
  400: "BadRequest",
  403: "Forbidden",
  404: "NotFound",
  405: "MethodNotAllowed",
  412: "PreconditionFailed",
};

/** Answers worth sending again at once (as the SDK's standard retry strategy does). */
const TRANSIENT = new Set([429, 500, 502, 503, 504]);
const decoder = new TextDecoder();
const ATTEMPTS = 3;

/** Response headers: `Headers`, or the small HTTP/1.1 client's map. */
export type LeanHeaders = Pick<HeaderMap, "get" | typeof Symbol.iterator>;

/** A successful answer: status, headers and the (small) body as text. */
export interface LeanResponse {
  status: number;
  headers: LeanHeaders;
  body: string;
}

function unescapeXml(s: string): string {
  return s.replace(
    /&(lt|gt|amp|quot|apos);/g,
    (_, e: string) => ({ lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" })[e]!,
  );
}

/** The `<Error>` in an S3 answer's body, if any. */
export function parseError(body: string): { code?: string; message: string } | undefined {
  if (!body.includes("<Error>")) return undefined;
  const code = /<Code>([^<]*)<\/Code>/.exec(body)?.[1];
  const message = unescapeXml(/<Message>([^<]*)<\/Message>/.exec(body)?.[1] ?? "");
  return code ? { code: unescapeXml(code), message } : { message };
}

function isIpHost(hostname: string): boolean {
  return /^\d+\.\d+\.\d+\.\d+$/.test(hostname) || hostname.startsWith("[") ||
    hostname === "localhost";
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Signed requests to the objects of one bucket over pooled connections.
 * Bodies are bytes in memory, so a request can be sent again after a reset
 * keep-alive connection or a transient 5xx/429 (at most three attempts,
 * within the caller's signal).
 */
export class LeanS3 {
  readonly #signer: SigV4Signer;
  readonly #origin: string;
  readonly #host: string;
  /** Path before the key: the endpoint's path plus `/bucket` in path style. */
  readonly #prefix: string;
  readonly #slots: Semaphore;
  /** `fetch`'s client, used when a proxy is configured (only `fetch` honours one). */
  #client: Deno.HttpClient | undefined;
  /** The small HTTP/1.1 client, used otherwise. */
  #http1: Http1Client | undefined;
  #closed = false;

  constructor(t: LeanTarget) {
    this.#signer = new SigV4Signer(t.credentials, t.region);
    const u = new URL(t.endpoint ?? `https://s3.${t.region}.amazonaws.com`);
    const base = u.pathname.replace(/\/+$/, "");
    // The SDK's rule: virtual-hosted unless asked otherwise, or the bucket cannot be a
    // host name label (dots break TLS wildcards), or the endpoint is an address.
    const virtual = !t.forcePathStyle && /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/.test(t.bucket) &&
      !isIpHost(u.hostname);
    this.#host = virtual ? `${t.bucket}.${u.host}` : u.host;
    this.#origin = `${u.protocol}//${this.#host}`;
    this.#prefix = virtual ? base : `${base}/${encodePath(t.bucket)}`;
    this.#slots = new Semaphore(t.maxConnections);
    if (proxyConfigured()) {
      this.#client = Deno.createHttpClient({ poolMaxIdlePerHost: t.maxConnections });
    } else this.#http1 = new Http1Client(this.#origin, t.maxConnections);
  }

  /**
   * Sends one request for `key` (the bucket itself when undefined) and
   * returns the answer; a refusal (status
   * 300 or more, or an `<Error>` body, which CopyObject may send with 200)
   * throws {@linkcode LeanS3Error}, a network failure throws what fetch
   * threw.
   */
  async send(
    method: "PUT" | "HEAD" | "DELETE" | "GET",
    key: string | undefined,
    headers: Record<string, string>,
    body: Uint8Array<ArrayBuffer> | undefined,
    signal: AbortSignal,
    query?: Record<string, string>,
  ): Promise<LeanResponse> {
    const path = key === undefined ? this.#prefix || "/" : `${this.#prefix}/${encodePath(key)}`;
    const target = path + (query ? "?" + canonicalQuery(query) : "");
    for (let attempt = 1;; attempt++) {
      if (this.#closed) throw new Error("the connection pool is closed");
      // The payload is left out of the signature; the signed Content-MD5 binds it instead.
      const signed = this.#signer.sign({
        method,
        host: this.#host,
        path,
        ...(query ? { query } : {}),
        headers,
        payloadHash: UNSIGNED_PAYLOAD,
      });
      await this.#slots.acquire(signal);
      let res: { status: number; headers: LeanHeaders };
      let text: string;
      try {
        try {
          if (this.#http1) {
            // The client writes host and content-length itself; callers never pass them.
            const r = await this.#http1.request(method, target, signed, body, signal);
            res = r;
            text = r.body.length > 0 ? decoder.decode(r.body) : "";
          } else {
            const client = this.#client;
            if (!client) throw new Error("the connection pool is closed");
            let fetched: Response;
            try {
              fetched = await fetch(this.#origin + target, {
                method,
                headers: signed,
                ...(body ? { body } : {}),
                // A redirect is an answer to report (wrong region), never to follow unsigned.
                redirect: "manual",
                signal,
                client,
              });
            } catch (err) {
              if (signal.aborted) throw err;
              throw new NoAnswerError(
                // fetch says only "fetch failed"; the reason is in its cause.
                ((err as Error).cause as Error | undefined)?.message ?? (err as Error).message,
                { cause: err },
              );
            }
            res = fetched;
            try {
              text = method === "HEAD" ? "" : await fetched.text();
            } catch (err) {
              if (signal.aborted) throw signal.reason;
              throw new CutOffError(fetched.status, "cut off", { cause: err });
            }
          }
        } catch (err) {
          // No answer: a keep-alive connection the server had closed, or the network.
          if (err instanceof NoAnswerError) {
            if (attempt >= ATTEMPTS) {
              throw new Error(`connection failed: ${err.message}`, { cause: err });
            }
            continue;
          }
          // The status line arrived, the rest was cut off.
          if (err instanceof CutOffError) throw new LeanS3Error(err.status, undefined, "", false);
          throw err;
        }
      } finally {
        this.#slots.release();
      }
      const error = res.status >= 300 ? parseError(text) ?? { message: "" } : parseError(text);
      if (!error) return { status: res.status, headers: res.headers, body: text };
      const status = res.status >= 300 ? res.status : 500;
      if (TRANSIENT.has(status) && attempt < ATTEMPTS) {
        await abortableSleep(Math.random() * 100 * 2 ** attempt, signal);
        continue;
      }
      throw new LeanS3Error(status, error.code, error.message, true);
    }
  }

  /** Closes the pooled connections; later requests fail. */
  close(): void {
    this.#closed = true;
    this.#client?.close();
    this.#client = undefined;
    this.#http1?.close();
    this.#http1 = undefined;
  }
}

/** The parts of a PutObject/HeadObject answer the client reads, in the SDK's names. */
export interface LeanObjectOutput {
  ETag?: string;
  ContentLength?: number;
  LastModified?: Date;
  Metadata?: Record<string, string>;
  ServerSideEncryption?: string;
  SSECustomerAlgorithm?: string;
}

/** Reads an object answer's headers into {@linkcode LeanObjectOutput}. */
export function objectOutput(h: LeanHeaders): LeanObjectOutput {
  const out: LeanObjectOutput = {};
  const etag = h.get("etag");
  if (etag) out.ETag = etag;
  const length = h.get("content-length");
  if (length !== null && /^\d+$/.test(length)) out.ContentLength = Number(length);
  const modified = h.get("last-modified");
  if (modified && !Number.isNaN(Date.parse(modified))) out.LastModified = new Date(modified);
  const sse = h.get("x-amz-server-side-encryption");
  if (sse) out.ServerSideEncryption = sse;
  const ssec = h.get("x-amz-server-side-encryption-customer-algorithm");
  if (ssec) out.SSECustomerAlgorithm = ssec;
  for (const [k, v] of h) {
    if (k.startsWith("x-amz-meta-")) (out.Metadata ??= {})[k.slice(11)] = v;
  }
  return out;
}

/**
 * The parts of a PutObject answer the upload checks: the ETag and the
 * encryption under which it is no MD5 (cheaper than
 * {@linkcode objectOutput}, which reads every header).
 */
export function putOutput(h: LeanHeaders): LeanObjectOutput {
  const out: LeanObjectOutput = {};
  const etag = h.get("etag");
  if (etag) out.ETag = etag;
  const sse = h.get("x-amz-server-side-encryption");
  if (sse) out.ServerSideEncryption = sse;
  const ssec = h.get("x-amz-server-side-encryption-customer-algorithm");
  if (ssec) out.SSECustomerAlgorithm = ssec;
  return out;
}

/** `x-amz-checksum-crc32`: the big-endian CRC32 of the body, base64. */
export function crc32Base64(data: Uint8Array): string {
  const c = crc32(data);
  return btoa(String.fromCharCode(c >>> 24, (c >>> 16) & 255, (c >>> 8) & 255, c & 255));
}
