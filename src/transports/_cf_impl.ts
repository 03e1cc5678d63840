/**
 * The `cf` transport itself: S3 uploads plus CloudFront invalidations.
 * Loaded by `cf.ts` on the first `create()`, so that only configurations
 * with a CloudFront server pay for the AWS SDK. See `cf.ts` for what it does.
 *
 * @module
 */
import { ClassifiedError } from "../errors.ts";
import { type OptionValues, parseSettings } from "../options.ts";
import { encodePath, safeRemotePath } from "./paths.ts";
import type {
  CallOptions,
  Flusher,
  Lister,
  Mover,
  PutOptions,
  PutResult,
  RemoteStat,
  Stater,
  Transport,
  TransportContext,
} from "./transport.ts";
import { Invalidator } from "./_invalidation.ts";
import { s3Settings, S3Transport } from "./s3/transport.ts";
import { CF_EXTRA_OPTIONS } from "./_cf_options.ts";

/** A CloudFront distribution over an S3 bucket (settings validated by `cf.ts`). */
export class CloudFront implements Transport, Stater, Lister, Mover, Flusher {
  readonly #s3: S3Transport;
  readonly #base: string;
  readonly #inv?: Invalidator;
  readonly #invalidateNew: boolean;
  readonly #ctx: TransportContext;
  #warnedHead = false;

  /** @param values Validated settings (`CF_OPTIONS`). */
  constructor(values: OptionValues, ctx: TransportContext) {
    const s3 = s3Settings(values);
    const cf = parseSettings(CF_EXTRA_OPTIONS, values);
    this.#s3 = new S3Transport(s3, ctx);
    this.#ctx = ctx;
    const domain = cf.distro_domain_name.trim().replace(/\/+$/, "");
    this.#base = (/^https?:\/\//i.test(domain) ? domain : `https://${domain}`) + "/";
    this.#invalidateNew = cf.invalidate_new;
    const id = (cf.distribution_id ?? "").trim();
    if (id) {
      const endpoint = cf.cloudfront_endpoint?.trim();
      this.#inv = new Invalidator({
        distributionId: id,
        delayMs: cf.invalidation_delay * 1000,
        ...(endpoint ? { endpoint } : {}),
        ...(s3.credentials ? { credentials: s3.credentials } : {}),
      }, ctx);
    }
  }

  /** Whether the object exists now (for deciding on an invalidation); errors count as "exists". */
  async #existing(rel: string, signal: AbortSignal): Promise<RemoteStat | "unknown" | null> {
    try {
      return await this.#s3.stat(rel, { signal });
    } catch (err) {
      if (!(err instanceof ClassifiedError) || err.kind !== "server") throw err;
      if (!this.#warnedHead) {
        this.#warnedHead = true;
        this.#ctx.log.warn(
          `${err.message}; uploads are invalidated even when new (grant s3:GetObject and s3:ListBucket to avoid that)`,
        );
      }
      return "unknown";
    }
  }

  async put(localPath: string, remotePath: string, options: PutOptions): Promise<PutResult> {
    const rel = safeRemotePath(remotePath);
    if (!this.#inv) return await this.#s3.put(localPath, rel, options);
    // CloudFront only caches what was there before: new files need no invalidation.
    const before = this.#invalidateNew ? "unknown" : await this.#existing(rel, options.signal);
    const result = await this.#s3.put(localPath, rel, options);
    const unchanged = before !== null && before !== "unknown" && before.md5 !== undefined &&
      before.md5 === result.md5 && before.size === result.size;
    if (before !== null && !unchanged) this.#inv.add(this.#s3.key(rel));
    return result;
  }

  async delete(remotePath: string, options: CallOptions): Promise<void> {
    const rel = safeRemotePath(remotePath);
    await this.#s3.delete(rel, options);
    this.#inv?.add(this.#s3.key(rel));
  }

  async move(from: string, to: string, options: CallOptions): Promise<void> {
    const src = safeRemotePath(from);
    const dst = safeRemotePath(to);
    const before = this.#inv && !this.#invalidateNew
      ? await this.#existing(dst, options.signal)
      : "unknown";
    await this.#s3.move(src, dst, options);
    this.#inv?.add(this.#s3.key(src));
    if (before !== null) this.#inv?.add(this.#s3.key(dst));
  }

  stat(remotePath: string, options: CallOptions): Promise<RemoteStat | null> {
    return this.#s3.stat(remotePath, options);
  }

  list(prefix: string, options: CallOptions): AsyncIterable<{ path: string } & RemoteStat> {
    return this.#s3.list(prefix, options);
  }

  /** Sends pending invalidations now (the pipeline calls this when idle and at shutdown). */
  async flush(options: CallOptions): Promise<void> {
    await this.#inv?.flush(options.signal);
  }

  /** Paths waiting for the next invalidation request. */
  get pendingInvalidations(): number {
    return this.#inv?.pending ?? 0;
  }

  /** Invalidations sent so far (ID and paths), oldest first. */
  get invalidations(): readonly { id: string; paths: string[] }[] {
    return this.#inv?.sent ?? [];
  }

  url(remotePath: string): string {
    return this.#base + encodePath(this.#s3.key(remotePath));
  }

  async close(): Promise<void> {
    await this.#inv?.close();
    await this.#s3.close();
  }
}
