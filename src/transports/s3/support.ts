/**
 * S3 settings, the classification and wording of S3 errors, the SDK's
 * logger, and ETag helpers.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { ObjectCannedACL, S3ClientConfig, StorageClass } from "@aws-sdk/client-s3";
import { ClassifiedError, classify, type ErrorKind, errorMessage } from "../../errors.ts";
import { type Logger, redact } from "../../log.ts";
import { type OptionValues, parseSettings } from "../../options.ts";
import { joinRemote } from "../paths.ts";
import { md5Hex, MiB, parseSize, settingText as text } from "../_common.ts";
import { MIN_PART, ORIGINAL_CACHE_CONTROL, ORIGINAL_EXPIRES, S3_OPTIONS } from "../_s3_options.ts";

/** Most parts per upload. */
export const MAX_PARTS = 10_000;

/** The S3 settings of one server, parsed once. */
export interface S3Settings {
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

/**
 * Reads validated S3 option values (see `S3_OPTIONS`) once into the
 * settings the client uses: sizes in bytes, booleans, the headers the
 * `headers` preset implies, the credentials when keys are configured.
 */
export function s3Settings(values: OptionValues): S3Settings {
  const v = parseSettings(S3_OPTIONS, values);
  const bucket = (v.bucket_prefix ?? "") + v.bucket_name.trim();
  const original = v.headers === "original";
  const expires = text(v.expires) ?? (original ? ORIGINAL_EXPIRES : undefined);
  const key = text(v.access_key_id);
  const secret = text(v.secret_access_key);
  const token = text(v.session_token);
  const s: S3Settings = {
    bucket,
    prefix: joinRemote(text(v.path) ?? ""),
    region: text(v.region) ?? "us-east-1",
    forcePathStyle: v.force_path_style,
    checksum: v.checksum === "when_required" ? "when_required" : "when_supported",
    urlStyle: v.url_style === "virtual" || v.url_style === "path"
      ? v.url_style
      : v.force_path_style || bucket.includes(".")
      ? "path"
      : "virtual",
    multipartThreshold: parseSize(v.multipart_threshold) ?? 64 * MiB,
    partSize: Math.max(MIN_PART, parseSize(v.part_size) ?? 8 * MiB),
    partConcurrency: v.part_concurrency,
    createBucket: v.create_bucket,
  };
  const endpoint = text(v.endpoint);
  if (endpoint) s.endpoint = endpoint.replace(/\/+$/, "");
  if (v.acl) s.acl = v.acl as ObjectCannedACL;
  const cacheControl = text(v.cache_control) ?? (original ? ORIGINAL_CACHE_CONTROL : undefined);
  if (cacheControl) s.cacheControl = cacheControl;
  if (expires) s.expires = new Date(expires);
  const storageClass = text(v.storage_class);
  if (storageClass) s.storageClass = storageClass.toUpperCase() as StorageClass;
  const url = text(v.url);
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
export const SERVER_CODES: Record<string, string> = {
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
export const RETRY_CODES: Record<string, string> = {
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
export const EXPLAINING = new Set([
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

export interface SdkError {
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

export function isNotFound(err: unknown): boolean {
  const e = err as SdkError;
  return e?.$metadata?.httpStatusCode === 404 && (e.name === "NotFound" || e.name === "NoSuchKey" ||
    e.Code === "NoSuchKey" || e.name === "UnknownError" || e.name === undefined);
}

export function isNoSuchBucket(err: unknown): boolean {
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

export function base64ToHex(b64: string): string {
  return Buffer.from(b64, "base64").toString("hex");
}

/** Whether a response says the object is encrypted so that its ETag is not its MD5. */
export function etagNotMd5(
  out: { ServerSideEncryption?: string; SSECustomerAlgorithm?: string },
): boolean {
  return (out.ServerSideEncryption ?? "").startsWith("aws:kms") || !!out.SSECustomerAlgorithm;
}

/** The S3 ETag of a multipart upload: MD5 of the parts' binary MD5s, a dash, the part count. */
export function multipartEtag(partMd5s: string[]): string {
  return `${md5Hex(Buffer.concat(partMd5s.map((h) => Buffer.from(h, "hex"))))}-${partMd5s.length}`;
}
