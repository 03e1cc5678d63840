/**
 * The S3 client shared by the `s3` and `cf` transports: settings, error
 * classification, verified single-part and multipart
 * uploads, stat, list, server-side move.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as http from "node:http";
import * as https from "node:https";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  type CreateBucketCommandInput,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  ListObjectsV2Command,
  type ObjectCannedACL,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
  type StorageClass,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { ClassifiedError, classify, type ErrorKind, errorMessage } from "../errors.ts";
import { addSecret, type Logger, redact } from "../log.ts";
import { isTrue, type OptionValues } from "../options.ts";
import { encodePath, isTempName, joinRemote, joinUrl, safeRemotePath } from "./paths.ts";
import type {
  CallOptions,
  Lister,
  Mover,
  PutOptions,
  PutResult,
  RemoteStat,
  Stater,
  Transport,
  TransportContext,
} from "./transport.ts";
import {
  basename,
  callDeadline,
  callSignal,
  contentTypeFor,
  hexToBase64,
  isMd5,
  md5Hex,
  MiB,
  parseSize,
  readExactly,
  SMALL_FILE,
  unquoteEtag,
} from "./_common.ts";
import { formatBytes } from "../util/format.ts";
import { md5File } from "../util/hash.ts";
import { mapLimit } from "../util/pool.ts";
import { MIN_PART, ORIGINAL_CACHE_CONTROL, ORIGINAL_EXPIRES } from "./_s3_options.ts";
import { crc32Base64, type LeanObjectOutput, LeanS3, objectOutput } from "./_s3_lean.ts";

export { ORIGINAL_CACHE_CONTROL, ORIGINAL_EXPIRES, S3_OPTIONS, validateS3 } from "./_s3_options.ts";

/** Most parts per upload. */
const MAX_PARTS = 10_000;

interface S3Settings {
  bucket: string;
  prefix: string;
  region: string;
  endpoint?: string;
  forcePathStyle: boolean;
  checksum: "when_supported" | "when_required";
  acl?: ObjectCannedACL;
  cacheControl?: string;
  expires?: Date;
  storageClass?: StorageClass;
  url?: string;
  urlStyle: "virtual" | "path";
  multipartThreshold: number;
  partSize: number;
  partConcurrency: number;
  createBucket: boolean;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

function parseSettings(v: OptionValues): S3Settings {
  const str = (name: string) => {
    const s = (v[name] ?? "").trim();
    return s === "" ? undefined : s;
  };
  const bucket = (v.bucket_prefix ?? "") + (v.bucket_name ?? "").trim();
  const original = str("headers") === "original";
  const forcePathStyle = isTrue(v.force_path_style);
  const expires = str("expires") ?? (original ? ORIGINAL_EXPIRES : undefined);
  const key = str("access_key_id");
  const secret = str("secret_access_key");
  const token = str("session_token");
  const s: S3Settings = {
    bucket,
    prefix: joinRemote(str("path") ?? ""),
    region: str("region") ?? "us-east-1",
    forcePathStyle,
    checksum: str("checksum") === "when_required" ? "when_required" : "when_supported",
    urlStyle: (str("url_style") as "virtual" | "path" | undefined) ??
      (forcePathStyle || bucket.includes(".") ? "path" : "virtual"),
    multipartThreshold: parseSize(str("multipart_threshold") ?? "64M") ?? 64 * MiB,
    partSize: Math.max(MIN_PART, parseSize(str("part_size") ?? "8M") ?? 8 * MiB),
    partConcurrency: Math.max(1, Number(str("part_concurrency") ?? "4") || 4),
    createBucket: isTrue(v.create_bucket),
  };
  const endpoint = str("endpoint");
  if (endpoint) s.endpoint = endpoint.replace(/\/+$/, "");
  const acl = str("acl");
  if (acl) s.acl = acl.toLowerCase() as ObjectCannedACL;
  const cacheControl = str("cache_control") ?? (original ? ORIGINAL_CACHE_CONTROL : undefined);
  if (cacheControl) s.cacheControl = cacheControl;
  if (expires) s.expires = new Date(expires);
  const storageClass = str("storage_class");
  if (storageClass) s.storageClass = storageClass.toUpperCase() as StorageClass;
  const url = str("url");
  if (url) s.url = url;
  if (key && secret) {
    s.credentials = {
      accessKeyId: key,
      secretAccessKey: secret,
      ...(token ? { sessionToken: token } : {}),
    };
  }
  return s;
}

/** What went wrong, in words, for S3 error codes that are not about one object. */
const SERVER_CODES: Record<string, string> = {
  AccessDenied: "access denied",
  Forbidden: "access denied",
  InvalidAccessKeyId: "the access key ID is not known to the server",
  SignatureDoesNotMatch: "the secret access key is wrong (signature mismatch)",
  ExpiredToken: "the session token has expired",
  InvalidToken: "the session token is invalid",
  TokenRefreshRequired: "the session token must be refreshed",
  AccountProblem: "the account has a problem",
  AllAccessDisabled: "all access to this bucket has been disabled",
  InvalidBucketName: "the bucket name is not valid",
  PermanentRedirect: "the bucket is in another region (check the region setting)",
  AuthorizationHeaderMalformed:
    "the request was signed for the wrong region (check the region setting)",
  IllegalLocationConstraintException: "the bucket is in another region (check the region setting)",
  RequestTimeTooSkewed: "the local clock differs too much from the server's",
  SlowDown: "the server asks to slow down",
  ServiceUnavailable: "the service is unavailable",
  Throttling: "requests are throttled",
  ThrottlingException: "requests are throttled",
  TooManyRequests: "requests are throttled",
  RequestLimitExceeded: "requests are throttled",
  AccessControlListNotSupported: "the bucket does not accept ACLs (remove the acl setting)",
  InvalidStorageClass: "the storage class is not valid (check storage_class)",
  NotImplemented:
    "the server does not implement this request (S3-compatible servers may need checksum=when_required)",
  CredentialsProviderError:
    "no AWS credentials found (set access_key_id and secret_access_key, or configure the credential chain)",
  InvalidRegion: "the region is not valid",
};

/** Codes about one transfer that deserve a retry of that file. */
const RETRY_CODES: Record<string, string> = {
  BadDigest:
    "the uploaded bytes do not match their MD5 (the file changed or was corrupted in transit)",
  InvalidDigest: "the Content-MD5 header was refused",
  IncompleteBody:
    "the server received fewer bytes than announced (the file changed while uploading?)",
  XAmzContentSHA256Mismatch: "the uploaded bytes do not match their SHA-256",
  RequestTimeout: "the upload was too slow and the server closed it",
  InternalError: "internal server error",
  NoSuchUpload: "the multipart upload was cancelled on the server",
  OperationAborted: "a conflicting operation is in progress",
};

/** Errors of a probe that explain why an upload's connection was cut. */
const EXPLAINING = new Set([
  "NoSuchBucket",
  "SignatureDoesNotMatch",
  "InvalidAccessKeyId",
  "ExpiredToken",
  "InvalidToken",
  "PermanentRedirect",
  "AuthorizationHeaderMalformed",
  "AccountProblem",
  "AllAccessDisabled",
]);

interface SdkError {
  name?: string;
  Code?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $fault?: string;
}

/**
 * Turns an SDK error into a {@linkcode ClassifiedError} naming the server and
 * path. Configuration and availability problems (credentials, bucket,
 * region, throttling, network, 503) are "server"; a 500 or a corrupted
 * transfer is "retry" (one object, transient); other 4xx answers are
 * "fatal" (something about this one object).
 */
export function s3Error(
  err: unknown,
  what: { action: string; path: string; server: string; bucket: string; timeoutMs: number },
  signal?: AbortSignal,
  callSig?: AbortSignal,
): ClassifiedError {
  if (err instanceof ClassifiedError) return err;
  const prep = what.action === "upload" ? "to" : "on";
  const head = `Cannot ${what.action} "${what.path}" ${prep} server "${what.server}"`;
  const make = (text: string, kind: ErrorKind) =>
    new ClassifiedError(redact(`${head}: ${text}`), kind, { cause: err });
  if (signal?.aborted) return make("cancelled", "retry");
  if (callSig?.aborted) return make(`no answer within ${what.timeoutMs / 1000} s`, "server");
  const e = (err ?? {}) as SdkError;
  const status = e.$metadata?.httpStatusCode;
  const code = e.Code ?? e.name ?? "";
  const detail = (human: string) => {
    const msg = (e.message ?? "").trim();
    const extra = msg && msg !== code && msg !== "UnknownError" && msg.length < 300
      ? `: ${msg}`
      : "";
    return `${human} (${code || `HTTP ${status}`}${extra})`;
  };
  if (code === "NoSuchBucket") {
    return make(detail(`bucket "${what.bucket}" does not exist`), "server");
  }
  if (code in SERVER_CODES) return make(detail(SERVER_CODES[code]!), "server");
  if (code in RETRY_CODES) return make(detail(RETRY_CODES[code]!), "retry");
  if (code === "TimeoutError" || code === "RequestTimeoutException") {
    const msg = e.message ?? "";
    return make(
      /timed? ?out/i.test(msg)
        ? `no answer within ${what.timeoutMs / 1000} s`
        : `connection failed (${msg})`,
      "server",
    );
  }
  if (status === undefined) {
    // No HTTP answer at all: network trouble or an unreadable response.
    const kind = classify(err);
    return make(errorMessage(err), kind === "retry" ? "server" : kind);
  }
  if (status === 401 || status === 403) return make(detail("access denied"), "server");
  if (status === 404) return make(detail("not found"), "server");
  if (status === 500) return make(detail("internal server error"), "retry");
  if (status >= 500) return make(detail(`server error ${status}`), "server");
  if (status === 429) return make(detail("requests are throttled"), "server");
  if (status === 408) return make(detail("request timeout"), "retry");
  return make(detail(`refused (HTTP ${status})`), "fatal");
}

function isNotFound(err: unknown): boolean {
  const e = err as SdkError;
  return e?.$metadata?.httpStatusCode === 404 && (e.name === "NotFound" || e.name === "NoSuchKey" ||
    e.Code === "NoSuchKey" || e.name === "UnknownError" || e.name === undefined);
}

function isNoSuchBucket(err: unknown): boolean {
  const e = err as SdkError;
  return e?.name === "NoSuchBucket" || e?.Code === "NoSuchBucket";
}

/** Routes the SDK's own log lines to debug (errors are reported by the transport itself). */
export function sdkLogger(log: Logger): S3ClientConfig["logger"] {
  return {
    debug: () => {},
    info: () => {},
    warn: (...args: unknown[]) => log.debug(`SDK: ${args.map(String).join(" ")}`),
    error: (...args: unknown[]) => log.debug(`SDK: ${args.map(String).join(" ")}`),
  };
}

function base64ToHex(b64: string): string {
  return Buffer.from(b64, "base64").toString("hex");
}

/** Whether a response says the object is encrypted so that its ETag is not its MD5. */
function etagNotMd5(
  out: { ServerSideEncryption?: string; SSECustomerAlgorithm?: string },
): boolean {
  return (out.ServerSideEncryption ?? "").startsWith("aws:kms") || !!out.SSECustomerAlgorithm;
}

/** The S3 ETag of a multipart upload: MD5 of the parts' binary MD5s, a dash, the part count. */
function multipartEtag(partMd5s: string[]): string {
  return `${md5Hex(Buffer.concat(partMd5s.map((h) => Buffer.from(h, "hex"))))}-${partMd5s.length}`;
}

/**
 * One S3 bucket (AWS or S3-compatible). Connects on first use; pools up to
 * `maxConnections` keep-alive connections.
 */
export class S3Transport implements Transport, Stater, Lister, Mover {
  readonly #s: S3Settings;
  readonly #ctx: TransportContext;
  #client?: S3Client;
  #agent?: http.Agent;
  #leanClient?: LeanS3;
  #bucketCreated?: Promise<void>;
  #closed = false;

  /**
   * @param settings Validated settings (S3_OPTIONS).
   * @param ctx The daemon's context for this server.
   */
  constructor(settings: OptionValues, ctx: TransportContext) {
    this.#s = parseSettings(settings);
    this.#ctx = ctx;
    if (this.#s.credentials) {
      addSecret(this.#s.credentials.secretAccessKey);
      if (this.#s.credentials.sessionToken) addSecret(this.#s.credentials.sessionToken);
    }
  }

  /** The bucket's name (bucket_prefix + bucket_name). */
  get bucket(): string {
    return this.#s.bucket;
  }

  /** The object key of a remote path (the `path` prefix included). */
  key(remotePath: string): string {
    return joinRemote(this.#s.prefix, safeRemotePath(remotePath));
  }

  get #c(): S3Client {
    if (this.#closed) {
      throw new ClassifiedError(`Server "${this.#ctx.serverName}" is closed`, "retry");
    }
    if (this.#client) return this.#client;
    const s = this.#s;
    const tls = (s.endpoint ?? "https:").startsWith("https:");
    const agentOptions = { keepAlive: true, maxSockets: this.#ctx.maxConnections };
    this.#agent = tls ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
    const config: S3ClientConfig = {
      region: s.region,
      forcePathStyle: s.forcePathStyle,
      // Low-level retries (rclone's term): a reset keep-alive connection or a 503 is tried
      // again at once, within the call's timeout. Streamed bodies are never replayed by the
      // SDK; everything else is retried by the pipeline with backoff.
      maxAttempts: 3,
      requestChecksumCalculation: s.checksum === "when_required"
        ? "WHEN_REQUIRED"
        : "WHEN_SUPPORTED",
      responseChecksumValidation: s.checksum === "when_required"
        ? "WHEN_REQUIRED"
        : "WHEN_SUPPORTED",
      logger: sdkLogger(this.#ctx.log),
      requestHandler: {
        ...(tls ? { httpsAgent: this.#agent as https.Agent } : { httpAgent: this.#agent }),
        connectionTimeout: this.#ctx.timeoutMs,
        // Idle timeout of a socket: a stalled transfer fails, a slow but moving one does not.
        socketTimeout: this.#ctx.timeoutMs,
      },
    };
    if (s.endpoint) config.endpoint = s.endpoint;
    if (s.credentials) config.credentials = s.credentials;
    this.#client = new S3Client(config);
    return this.#client;
  }

  /**
   * The lean request path (fetch + SigV4) for single small requests, when the
   * credentials are configured keys; undefined with the AWS credential chain,
   * which only the SDK resolves.
   */
  get #lean(): LeanS3 | undefined {
    const s = this.#s;
    if (!s.credentials) return undefined;
    if (this.#closed) {
      throw new ClassifiedError(`Server "${this.#ctx.serverName}" is closed`, "retry");
    }
    this.#leanClient ??= new LeanS3({
      ...(s.endpoint ? { endpoint: s.endpoint } : {}),
      bucket: s.bucket,
      region: s.region,
      forcePathStyle: s.forcePathStyle,
      credentials: s.credentials,
      maxConnections: this.#ctx.maxConnections,
    });
    return this.#leanClient;
  }

  /** The headers of #objectParams for a lean PutObject. */
  #objectHeaders(rel: string, options: PutOptions): Record<string, string> {
    const s = this.#s;
    const h: Record<string, string> = { "content-type": contentTypeFor(rel, options) };
    if (options.contentEncoding) h["content-encoding"] = options.contentEncoding;
    if (s.cacheControl) h["cache-control"] = s.cacheControl;
    if (s.expires) h.expires = s.expires.toUTCString();
    if (s.acl) h["x-amz-acl"] = s.acl;
    if (s.storageClass) h["x-amz-storage-class"] = s.storageClass;
    return h;
  }

  #what(action: string, path: string) {
    return {
      action,
      path,
      server: this.#ctx.serverName,
      bucket: this.#s.bucket,
      timeoutMs: this.#ctx.timeoutMs,
    };
  }

  /** Runs one small call with the per-call timeout; maps errors. */
  async #call<T>(
    action: string,
    path: string,
    signal: AbortSignal,
    fn: (sig: AbortSignal) => Promise<T>,
  ): Promise<T> {
    const deadline = callDeadline(signal, this.#ctx.timeoutMs);
    try {
      return await fn(deadline.signal);
    } catch (err) {
      throw s3Error(err, this.#what(action, path), signal, deadline.signal);
    } finally {
      deadline.done();
    }
  }

  /** Creates the bucket once when `create_bucket` is on; returns false when it is off. */
  async #ensureBucket(signal: AbortSignal): Promise<boolean> {
    if (!this.#s.createBucket) return false;
    this.#bucketCreated ??= (async () => {
      const input: CreateBucketCommandInput = { Bucket: this.#s.bucket };
      if (this.#s.region !== "us-east-1" && !this.#s.endpoint) {
        input.CreateBucketConfiguration = { LocationConstraint: this.#s.region as never };
      }
      try {
        const abortSignal = callSignal(signal, this.#ctx.timeoutMs);
        const lean = this.#lean;
        if (lean) {
          const where = input.CreateBucketConfiguration?.LocationConstraint;
          const body = where
            ? new TextEncoder().encode(
              '<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
                `<LocationConstraint>${where}</LocationConstraint></CreateBucketConfiguration>`,
            )
            : undefined;
          await lean.send("PUT", undefined, {}, body, abortSignal);
        } else await this.#c.send(new CreateBucketCommand(input), { abortSignal });
        this.#ctx.log.info(`Created bucket "${this.#s.bucket}"`);
      } catch (err) {
        const code = (err as SdkError).name;
        if (code !== "BucketAlreadyOwnedByYou" && code !== "BucketAlreadyExists") {
          this.#bucketCreated = undefined;
          throw s3Error(err, this.#what("create bucket for", this.#s.bucket), signal);
        }
      }
    })();
    await this.#bucketCreated;
    return true;
  }

  /**
   * A server that refuses an upload early (wrong secret, missing bucket)
   * closes the connection while the body is still being sent, so the client
   * sees only a broken pipe, or the status line of the refusal without its
   * body (a 404 that does not say "NoSuchBucket": the SDK fails to read the
   * rest, "aborted"). Which one depends on timing. One small listing request
   * then tells why; when it succeeds, a broken connection was transient
   * (retry), and an unreadable refusal keeps its status.
   */
  async #explain(
    e: ClassifiedError,
    err: unknown,
    rel: string,
    signal: AbortSignal,
  ): Promise<ClassifiedError> {
    const sdk = err as SdkError | undefined;
    const status = sdk?.$metadata?.httpStatusCode;
    // An S3 error answer that was read carries its fault ("client"/"server").
    const unread = status !== undefined && sdk?.$fault === undefined;
    if ((status !== undefined && !unread) || signal.aborted) return e;
    try {
      const abortSignal = callSignal(signal, this.#ctx.timeoutMs);
      const lean = this.#lean;
      if (lean) {
        await lean.send("GET", undefined, {}, undefined, abortSignal, {
          "list-type": "2",
          prefix: this.key(rel),
          "max-keys": "1",
        });
      } else {
        await this.#c.send(
          new ListObjectsV2Command({ Bucket: this.#s.bucket, Prefix: this.key(rel), MaxKeys: 1 }),
          { abortSignal },
        );
      }
    } catch (probe) {
      const code = (probe as SdkError)?.name ?? "";
      if (EXPLAINING.has(code)) return s3Error(probe, this.#what("upload", rel), signal);
      return e;
    }
    return unread ? e : new ClassifiedError(e.message, "retry", { cause: err });
  }

  #objectParams(rel: string, options: PutOptions) {
    const s = this.#s;
    return {
      Bucket: s.bucket,
      Key: this.key(rel),
      ContentType: contentTypeFor(rel, options),
      ...(options.contentEncoding ? { ContentEncoding: options.contentEncoding } : {}),
      ...(s.cacheControl ? { CacheControl: s.cacheControl } : {}),
      ...(s.expires ? { Expires: s.expires } : {}),
      ...(s.acl ? { ACL: s.acl } : {}),
      ...(s.storageClass ? { StorageClass: s.storageClass } : {}),
    };
  }

  /**
   * Uploads a file: one verified PUT below `multipart_threshold` (Content-MD5
   * sent, ETag compared), otherwise a multipart upload with every part's
   * MD5 checked, the whole file's MD5 in `x-amz-meta-md5chksum` (base64, as rclone) and the final
   * size and ETag checked.
   */
  async put(localPath: string, remotePath: string, options: PutOptions): Promise<PutResult> {
    const rel = safeRemotePath(remotePath);
    for (let attempt = 0;; attempt++) {
      try {
        return options.size >= this.#s.multipartThreshold && options.size > 0
          ? await this.#putMultipart(localPath, rel, options)
          : await this.#putSingle(localPath, rel, options);
      } catch (err) {
        const cause = (err as Error).cause ?? err;
        if (attempt === 0 && isNoSuchBucket(cause) && await this.#ensureBucket(options.signal)) {
          continue;
        }
        throw err;
      }
    }
  }

  async #putSingle(localPath: string, rel: string, options: PutOptions): Promise<PutResult> {
    const describe = () => `Cannot upload "${rel}" to server "${this.#ctx.serverName}"`;
    let body: Uint8Array | fs.ReadStream;
    let md5: string;
    let sig: AbortSignal | undefined;
    let deadline: ReturnType<typeof callDeadline> | undefined;
    try {
      if (options.size <= SMALL_FILE) {
        const data = await readExactly(localPath, options.size, describe);
        md5 = md5Hex(data);
        body = data;
        deadline = callDeadline(options.signal, this.#ctx.timeoutMs);
        sig = deadline.signal;
      } else {
        md5 = options.md5 ?? await md5File(localPath, options.signal);
        // A node stream with a known length: web streams fail with the SDK under Deno.
        body = fs.createReadStream(localPath, { start: 0, end: options.size - 1 });
        sig = options.signal;
      }
    } catch (err) {
      if (err instanceof ClassifiedError) throw err;
      throw new ClassifiedError(
        `${describe()}: ${errorMessage(err)}`,
        classify(err) === "server" ? "retry" : classify(err),
        {
          cause: err,
        },
      );
    }
    let out: LeanObjectOutput;
    const lean = body instanceof Uint8Array ? this.#lean : undefined;
    try {
      if (lean) {
        const headers = this.#objectHeaders(rel, options);
        headers["content-md5"] = hexToBase64(md5);
        if (this.#s.checksum === "when_supported") {
          headers["x-amz-sdk-checksum-algorithm"] = "CRC32";
          headers["x-amz-checksum-crc32"] = crc32Base64(body as Uint8Array);
        }
        const res = await lean.send(
          "PUT",
          this.key(rel),
          headers,
          body as Uint8Array<ArrayBuffer>,
          sig,
        );
        out = objectOutput(res.headers);
      } else {
        out = await this.#c.send(
          new PutObjectCommand({
            ...this.#objectParams(rel, options),
            Body: body,
            ContentLength: options.size,
            ContentMD5: hexToBase64(md5),
          }),
          { abortSignal: sig },
        );
      }
    } catch (err) {
      const e = s3Error(
        err,
        this.#what("upload", rel),
        options.signal,
        sig === options.signal ? undefined : sig,
      );
      throw await this.#explain(e, err, rel, options.signal);
    } finally {
      deadline?.done();
      if (!(body instanceof Uint8Array)) body.destroy();
    }
    const etag = unquoteEtag(out.ETag);
    if (etag && etag.toLowerCase() !== md5 && !etagNotMd5(out)) {
      throw new ClassifiedError(
        `${describe()}: the server's ETag "${etag}" differs from the local MD5 "${md5}"`,
        "retry",
      );
    }
    return { size: options.size, ...(etag ? { etag } : {}), md5 };
  }

  async #putMultipart(localPath: string, rel: string, options: PutOptions): Promise<PutResult> {
    const describe = () => `Cannot upload "${rel}" to server "${this.#ctx.serverName}"`;
    const size = options.size;
    const { signal } = options;
    let fh: fsp.FileHandle;
    let md5: string;
    let before: fs.Stats;
    try {
      fh = await fsp.open(localPath, "r");
      before = await fh.stat();
      md5 = options.md5 ?? await md5File(localPath, signal);
    } catch (err) {
      throw new ClassifiedError(
        `${describe()}: ${errorMessage(err)}`,
        classify(err) === "server" ? "retry" : classify(err),
        {
          cause: err,
        },
      );
    }
    // Grow the part size (in whole MiB) when the file would need more than 10,000 parts.
    const partSize = Math.max(this.#s.partSize, Math.ceil(size / MAX_PARTS / MiB) * MiB);
    const count = Math.ceil(size / partSize);
    const params = this.#objectParams(rel, options);
    let uploadId: string | undefined;
    try {
      const created = await this.#call(
        "upload",
        rel,
        signal,
        (abortSignal) =>
          // rclone's convention (base64 MD5 in `md5chksum`): `rclone check` verifies our large files.
          this.#c.send(
            new CreateMultipartUploadCommand({
              ...params,
              Metadata: { md5chksum: hexToBase64(md5) },
            }),
            { abortSignal },
          ),
      );
      uploadId = created.UploadId;
      if (!uploadId) {
        throw new ClassifiedError(`${describe()}: the server returned no upload ID`, "retry");
      }
      let encrypted = etagNotMd5(created);
      const partMd5s: string[] = new Array(count);
      const parts = await mapLimit(
        Array.from({ length: count }, (_, i) => i),
        this.#s.partConcurrency,
        async (i) => {
          signal.throwIfAborted();
          const start = i * partSize;
          const len = Math.min(partSize, size - start);
          const buf = Buffer.allocUnsafe(len);
          let got = 0;
          while (got < len) {
            const { bytesRead } = await fh.read(buf, got, len - got, start + got);
            if (bytesRead === 0) break;
            got += bytesRead;
          }
          if (got !== len) {
            throw new ClassifiedError(
              `${describe()}: the local file shrank while uploading`,
              "retry",
            );
          }
          const partMd5 = md5Hex(buf);
          partMd5s[i] = partMd5;
          let out;
          try {
            out = await this.#c.send(
              new UploadPartCommand({
                Bucket: params.Bucket,
                Key: params.Key,
                UploadId: uploadId,
                PartNumber: i + 1,
                Body: buf,
                ContentLength: len,
                ContentMD5: hexToBase64(partMd5),
              }),
              { abortSignal: signal },
            );
          } catch (err) {
            const e = await this.#explain(
              s3Error(err, this.#what("upload", rel), signal),
              err,
              rel,
              signal,
            );
            throw new ClassifiedError(`${e.message} (part ${i + 1} of ${count})`, e.kind, {
              cause: e.cause,
            });
          }
          encrypted ||= etagNotMd5(out);
          const etag = unquoteEtag(out.ETag);
          if (!etag) throw new ClassifiedError(`${describe()}: no ETag for part ${i + 1}`, "retry");
          if (!encrypted && etag.toLowerCase() !== partMd5) {
            throw new ClassifiedError(
              `${describe()}: the server's ETag "${etag}" of part ${
                i + 1
              } differs from its MD5 "${partMd5}"`,
              "retry",
            );
          }
          return { PartNumber: i + 1, ETag: out.ETag! };
        },
      );
      const after = await fh.stat();
      if (after.size !== before.size || after.mtimeMs !== before.mtimeMs || after.size !== size) {
        throw new ClassifiedError(`${describe()}: the local file changed while uploading`, "retry");
      }
      const done = await this.#call(
        "upload",
        rel,
        signal,
        (abortSignal) =>
          this.#c.send(
            new CompleteMultipartUploadCommand({
              Bucket: params.Bucket,
              Key: params.Key,
              UploadId: uploadId,
              MultipartUpload: { Parts: parts },
            }),
            { abortSignal },
          ),
      );
      uploadId = undefined;
      const etag = unquoteEtag(done.ETag);
      const expected = multipartEtag(partMd5s);
      if (etag && !encrypted && !etagNotMd5(done) && etag.toLowerCase() !== expected) {
        throw new ClassifiedError(
          `${describe()}: the server's ETag "${etag}" differs from the expected multipart ETag "${expected}"`,
          "retry",
        );
      }
      const head = await this.#call(
        "upload",
        rel,
        signal,
        (abortSignal) =>
          this.#c.send(new HeadObjectCommand({ Bucket: params.Bucket, Key: params.Key }), {
            abortSignal,
          }),
      );
      if (head.ContentLength !== size) {
        throw new ClassifiedError(
          `${describe()}: the server stores ${head.ContentLength} bytes, expected ${size} (${
            formatBytes(size)
          })`,
          "retry",
        );
      }
      return { size, ...(etag ? { etag } : {}), md5 };
    } catch (err) {
      if (uploadId) {
        // Without this, the parts stay (and are billed) until a lifecycle rule removes them.
        const id = uploadId;
        await this.#c.send(
          new AbortMultipartUploadCommand({ Bucket: params.Bucket, Key: params.Key, UploadId: id }),
          { abortSignal: AbortSignal.timeout(this.#ctx.timeoutMs) },
        ).catch((e) =>
          this.#ctx.log.warn(`Cannot abort the multipart upload of "${rel}": ${errorMessage(e)}`)
        );
      }
      throw s3Error(err, this.#what("upload", rel), signal);
    } finally {
      await fh.close().catch(() => {});
    }
  }

  /** Deletes an object; a missing object is fine (S3 answers 204 either way). */
  async delete(remotePath: string, options: CallOptions): Promise<void> {
    const rel = safeRemotePath(remotePath);
    try {
      await this.#call(
        "delete",
        rel,
        options.signal,
        async (abortSignal) => {
          const lean = this.#lean;
          if (lean) await lean.send("DELETE", this.key(rel), {}, undefined, abortSignal);
          else {
            await this.#c.send(
              new DeleteObjectCommand({ Bucket: this.#s.bucket, Key: this.key(rel) }),
              { abortSignal },
            );
          }
        },
      );
    } catch (err) {
      if (isNotFound((err as Error).cause)) return;
      throw err;
    }
  }

  /** HeadObject: size, ETag, MD5 (from the ETag or `x-amz-meta-md5chksum`), mtime; null when missing. */
  async stat(remotePath: string, options: CallOptions): Promise<RemoteStat | null> {
    const rel = safeRemotePath(remotePath);
    let out: HeadObjectCommandOutput | LeanObjectOutput;
    try {
      out = await this.#call(
        "stat",
        rel,
        options.signal,
        async (abortSignal) => {
          const lean = this.#lean;
          if (lean) {
            return objectOutput(
              (await lean.send("HEAD", this.key(rel), {}, undefined, abortSignal)).headers,
            );
          }
          return await this.#c.send(
            new HeadObjectCommand({ Bucket: this.#s.bucket, Key: this.key(rel) }),
            { abortSignal },
          );
        },
      );
    } catch (err) {
      if (isNotFound((err as Error).cause)) return null;
      throw err;
    }
    const etag = unquoteEtag(out.ETag);
    const metaMd5 = out.Metadata?.md5chksum
      ? base64ToHex(out.Metadata.md5chksum)
      : out.Metadata?.md5;
    const md5 = isMd5(metaMd5)
      ? metaMd5.toLowerCase()
      : isMd5(etag) && !etagNotMd5(out)
      ? etag.toLowerCase()
      : undefined;
    return {
      size: out.ContentLength ?? 0,
      ...(etag ? { etag } : {}),
      ...(md5 ? { md5 } : {}),
      ...(out.LastModified ? { mtimeMs: out.LastModified.getTime() } : {}),
    };
  }

  /** ListObjectsV2 below `prefix`, page by page. */
  async *list(prefix: string, options: CallOptions): AsyncIterable<{ path: string } & RemoteStat> {
    const root = this.#s.prefix ? this.#s.prefix + "/" : "";
    const p = prefix.replace(/^\/+|\/+$/g, "") === "" ? root : root + safeRemotePath(prefix) + "/";
    let token: string | undefined;
    do {
      const out = await this.#call(
        "list",
        prefix || "/",
        options.signal,
        (abortSignal) =>
          this.#c.send(
            new ListObjectsV2Command({
              Bucket: this.#s.bucket,
              Prefix: p,
              ...(token ? { ContinuationToken: token } : {}),
            }),
            { abortSignal },
          ),
      );
      for (const o of out.Contents ?? []) {
        if (!o.Key || !o.Key.startsWith(root) || o.Key.endsWith("/")) continue;
        const rel = o.Key.slice(root.length);
        if (isTempName(basename(rel))) continue;
        const etag = unquoteEtag(o.ETag);
        yield {
          path: rel,
          size: o.Size ?? 0,
          ...(etag ? { etag } : {}),
          ...(isMd5(etag) ? { md5: etag.toLowerCase() } : {}),
          ...(o.LastModified ? { mtimeMs: o.LastModified.getTime() } : {}),
        };
      }
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
  }

  /**
   * Server-side move: CopyObject (metadata, MD5 included, copied; the ACL and
   * storage class set again) then DeleteObject. S3 copies objects up to
   * 5 GiB this way; larger ones fail (fatal) and are uploaded again.
   */
  async move(from: string, to: string, options: CallOptions): Promise<void> {
    const src = safeRemotePath(from);
    const dst = safeRemotePath(to);
    const s = this.#s;
    try {
      await this.#call("move", src, options.signal, async (abortSignal) => {
        const lean = this.#lean;
        if (lean) {
          const headers: Record<string, string> = {
            "x-amz-copy-source": `${s.bucket}/${encodePath(this.key(src))}`,
            "x-amz-metadata-directive": "COPY",
          };
          if (s.acl) headers["x-amz-acl"] = s.acl;
          if (s.storageClass) headers["x-amz-storage-class"] = s.storageClass;
          await lean.send("PUT", this.key(dst), headers, undefined, abortSignal);
          return;
        }
        await this.#c.send(
          new CopyObjectCommand({
            Bucket: s.bucket,
            Key: this.key(dst),
            CopySource: `${s.bucket}/${encodePath(this.key(src))}`,
            MetadataDirective: "COPY",
            ...(s.acl ? { ACL: s.acl } : {}),
            ...(s.storageClass ? { StorageClass: s.storageClass } : {}),
          }),
          { abortSignal },
        );
      });
    } catch (err) {
      const cause = (err as Error).cause as SdkError | undefined;
      if (
        cause?.name === "NoSuchKey" ||
        cause?.$metadata?.httpStatusCode === 404 && !isNoSuchBucket(cause)
      ) {
        throw new ClassifiedError(
          `Cannot move "${src}" on server "${this.#ctx.serverName}": it does not exist`,
          "fatal",
          { cause: err },
        );
      }
      throw err;
    }
    await this.delete(src, options);
  }

  /**
   * The public URL: `url` + key when set; otherwise the bucket's S3 URL
   * (virtual-hosted or path style). Never signed, never expiring.
   */
  url(remotePath: string): string {
    const key = this.key(remotePath);
    const s = this.#s;
    if (s.url) return joinUrl(s.url, key);
    const endpoint = s.endpoint ?? `https://s3.${s.region}.amazonaws.com`;
    if (s.urlStyle === "path") return joinUrl(`${endpoint}/${encodePath(s.bucket)}`, key);
    const u = new URL(endpoint);
    return joinUrl(`${u.protocol}//${s.bucket}.${u.host}${u.pathname.replace(/\/+$/, "")}`, key);
  }

  /** Closes the pooled connections. Idempotent. */
  close(): Promise<void> {
    this.#closed = true;
    this.#client?.destroy();
    this.#agent?.destroy();
    this.#leanClient?.close();
    this.#leanClient = undefined;
    this.#client = undefined;
    this.#agent = undefined;
    return Promise.resolve();
  }
}
