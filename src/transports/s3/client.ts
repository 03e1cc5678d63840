/**
 * The client side of the S3 transport: the SDK client or the lean signed
 * client, calls with their error wording, the bucket check and object
 * parameters.
 *
 * @module
 */
import type * as http from "node:http";
import type * as https from "node:https";
import type { CreateBucketCommandInput, S3Client, S3ClientConfig } from "@aws-sdk/client-s3";
import { ClassifiedError } from "../../errors.ts";
import { addSecret } from "../../log.ts";
import { joinRemote, safeRemotePath } from "../paths.ts";
import type { PutOptions, TransportContext } from "../transport.ts";
import { callDeadline, callSignal } from "../_common.ts";
import { contentTypeFor } from "../_content_type.ts";
import { LeanS3 } from "../_s3_lean.ts";
import { EXPLAINING, s3Error, type S3Settings, type SdkError, sdkLogger } from "./support.ts";

/** The AWS SDK's S3 module. */
export type Sdk = typeof import("@aws-sdk/client-s3");

/** The SDK and the HTTP modules its request handler needs. */
interface SdkModules {
  s3: Sdk;
  http: typeof http;
  https: typeof https;
}

let sdkModules: Promise<SdkModules> | undefined;

/**
 * Loads the AWS SDK (and node:http/https for its connection pool) on first
 * use. The lean path serves small objects with configured keys without it,
 * and loading it costs about a fifth of a second of CPU, as much as a
 * hundred small uploads' signing.
 */
function loadSdk(): Promise<SdkModules> {
  sdkModules ??= Promise.all([
    import("@aws-sdk/client-s3"),
    import("node:http"),
    import("node:https"),
  ]).then(([s3, http, https]) => ({ s3, http, https })).catch((err) => {
    sdkModules = undefined;
    throw err;
  });
  return sdkModules;
}

/** Calls to one S3 bucket (AWS or S3-compatible). */
export class S3Calls {
  protected readonly s: S3Settings;
  protected readonly ctx: TransportContext;
  protected client?: S3Client;
  protected agent?: http.Agent;
  protected leanClient?: LeanS3;
  #bucketCreated?: Promise<void>;
  protected closed = false;

  /**
   * @param settings Parsed settings (see `s3Settings` in support.ts).
   * @param ctx The daemon's context for this server.
   */
  constructor(settings: S3Settings, ctx: TransportContext) {
    this.s = settings;
    this.ctx = ctx;
    if (this.s.credentials) {
      addSecret(this.s.credentials.secretAccessKey);
      if (this.s.credentials.sessionToken) addSecret(this.s.credentials.sessionToken);
    }
  }

  /** The bucket's name (bucket_prefix + bucket_name). */
  get bucket(): string {
    return this.s.bucket;
  }

  /** The object key of a remote path (the `path` prefix included). */
  key(remotePath: string): string {
    const rel = safeRemotePath(remotePath);
    // A safe path has no empty segments: without a prefix it is the key.
    return this.s.prefix ? joinRemote(this.s.prefix, rel) : rel;
  }

  /**
   * Runs `fn` with the SDK module and the client (both created on first
   * use), for the calls the lean path does not make.
   */
  protected async sdk<T>(fn: (m: Sdk, client: S3Client) => Promise<T>): Promise<T> {
    this.#assertOpen();
    const m = await loadSdk();
    this.#assertOpen();
    this.client ??= this.#newClient(m);
    return await fn(m.s3, this.client);
  }

  #assertOpen(): void {
    if (this.closed) {
      throw new ClassifiedError(`Server "${this.ctx.serverName}" is closed`, "retry");
    }
  }

  #newClient(m: SdkModules): S3Client {
    const s = this.s;
    const tls = (s.endpoint ?? "https:").startsWith("https:");
    const agentOptions = { keepAlive: true, maxSockets: this.ctx.maxConnections };
    this.agent = tls ? new m.https.Agent(agentOptions) : new m.http.Agent(agentOptions);
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
      logger: sdkLogger(this.ctx.log),
      requestHandler: {
        ...(tls ? { httpsAgent: this.agent as https.Agent } : { httpAgent: this.agent }),
        connectionTimeout: this.ctx.timeoutMs,
        // Idle timeout of a socket: a stalled transfer fails, a slow but moving one does not.
        socketTimeout: this.ctx.timeoutMs,
      },
    };
    if (s.endpoint) config.endpoint = s.endpoint;
    if (s.credentials) config.credentials = s.credentials;
    return new m.s3.S3Client(config);
  }

  /**
   * The lean request path (fetch + SigV4) for single small requests, when the
   * credentials are configured keys; undefined with the AWS credential chain,
   * which only the SDK resolves.
   */
  protected get lean(): LeanS3 | undefined {
    const s = this.s;
    if (!s.credentials) return undefined;
    this.#assertOpen();
    this.leanClient ??= new LeanS3({
      ...(s.endpoint ? { endpoint: s.endpoint } : {}),
      bucket: s.bucket,
      region: s.region,
      forcePathStyle: s.forcePathStyle,
      credentials: s.credentials,
      maxConnections: this.ctx.maxConnections,
    });
    return this.leanClient;
  }

  /** The headers of #objectParams for a lean PutObject. */
  protected objectHeaders(rel: string, options: PutOptions): Record<string, string> {
    const s = this.s;
    const h: Record<string, string> = { "content-type": contentTypeFor(rel, options) };
    if (options.contentEncoding) h["content-encoding"] = options.contentEncoding;
    if (s.cacheControl) h["cache-control"] = s.cacheControl;
    if (s.expires) h.expires = s.expires.toUTCString();
    if (s.acl) h["x-amz-acl"] = s.acl;
    if (s.storageClass) h["x-amz-storage-class"] = s.storageClass;
    return h;
  }

  protected what(action: string, path: string) {
    return {
      action,
      path,
      server: this.ctx.serverName,
      bucket: this.s.bucket,
      timeoutMs: this.ctx.timeoutMs,
    };
  }

  /** Runs one small call with the per-call timeout; maps errors. */
  protected async call<T>(
    action: string,
    path: string,
    signal: AbortSignal,
    fn: (sig: AbortSignal) => Promise<T>,
  ): Promise<T> {
    const deadline = callDeadline(signal, this.ctx.timeoutMs);
    try {
      return await fn(deadline.signal);
    } catch (err) {
      throw s3Error(err, this.what(action, path), signal, deadline.signal);
    } finally {
      deadline.done();
    }
  }

  /** Creates the bucket once when `create_bucket` is on; returns false when it is off. */
  protected async ensureBucket(signal: AbortSignal): Promise<boolean> {
    if (!this.s.createBucket) return false;
    this.#bucketCreated ??= (async () => {
      const input: CreateBucketCommandInput = { Bucket: this.s.bucket };
      if (this.s.region !== "us-east-1" && !this.s.endpoint) {
        input.CreateBucketConfiguration = { LocationConstraint: this.s.region as never };
      }
      try {
        const abortSignal = callSignal(signal, this.ctx.timeoutMs);
        const lean = this.lean;
        if (lean) {
          const where = input.CreateBucketConfiguration?.LocationConstraint;
          const body = where
            ? new TextEncoder().encode(
              '<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
                `<LocationConstraint>${where}</LocationConstraint></CreateBucketConfiguration>`,
            )
            : undefined;
          await lean.send("PUT", undefined, {}, body, abortSignal);
        } else {
          await this.sdk((m, c) => c.send(new m.CreateBucketCommand(input), { abortSignal }));
        }
        this.ctx.log.info(`Created bucket "${this.s.bucket}"`);
      } catch (err) {
        const code = (err as SdkError).name;
        if (code !== "BucketAlreadyOwnedByYou" && code !== "BucketAlreadyExists") {
          this.#bucketCreated = undefined;
          throw s3Error(err, this.what("create bucket for", this.s.bucket), signal);
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
  protected async explain(
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
      const abortSignal = callSignal(signal, this.ctx.timeoutMs);
      const lean = this.lean;
      if (lean) {
        await lean.send("GET", undefined, {}, undefined, abortSignal, {
          "list-type": "2",
          prefix: this.key(rel),
          "max-keys": "1",
        });
      } else {
        await this.sdk((m, c) =>
          c.send(
            new m.ListObjectsV2Command({
              Bucket: this.s.bucket,
              Prefix: this.key(rel),
              MaxKeys: 1,
            }),
            { abortSignal },
          )
        );
      }
    } catch (probe) {
      const code = (probe as SdkError)?.name ?? "";
      if (EXPLAINING.has(code)) return s3Error(probe, this.what("upload", rel), signal);
      return e;
    }
    return unread ? e : new ClassifiedError(e.message, "retry", { cause: err });
  }

  protected objectParams(rel: string, options: PutOptions) {
    const s = this.s;
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
}
