/**
 * `cf`: Amazon CloudFront in front of an S3 bucket. Uploads go to S3 exactly
 * like the `s3` transport; URLs use the distribution's domain. With
 * `distribution_id` set, overwritten and deleted files are invalidated in
 * batches (the original never invalidated and relied on unique names).
 *
 * @module
 */
import { ClassifiedError } from "../errors.ts";
import { isTrue, type OptionSpec, type OptionValues } from "../options.ts";
import { encodePath, safeRemotePath } from "../transport/paths.ts";
import {
  type CallOptions,
  type Flusher,
  type Lister,
  type Mover,
  type PutOptions,
  type PutResult,
  registerTransport,
  type RemoteStat,
  type Stater,
  type Transport,
  type TransportContext,
} from "../transport/transport.ts";
import { Invalidator } from "./_invalidation.ts";
import { S3_OPTIONS, S3Transport, validateS3 } from "./_s3_common.ts";

const CF_OPTIONS: readonly OptionSpec[] = [
  ...S3_OPTIONS.filter((o) => o.name !== "url" && o.name !== "url_style"),
  {
    name: "distro_domain_name",
    required: true,
    help:
      "Domain of the distribution, e.g. d111111abcdef8.cloudfront.net or cdn.example.com (URLs are https://domain/key)",
  },
  {
    name: "distribution_id",
    help:
      "Distribution ID, e.g. EDFDVBD6EXAMPLE; when set, overwritten and deleted files are invalidated",
  },
  {
    name: "invalidation_delay",
    type: "number",
    min: 0,
    max: 3600,
    default: "5",
    help: "Seconds to collect changes before one invalidation request is sent",
  },
  {
    name: "invalidate_new",
    type: "boolean",
    default: "false",
    help: "Also invalidate files uploaded for the first time (clears cached 404 answers)",
  },
  {
    name: "cloudfront_endpoint",
    type: "url",
    help: "CloudFront API endpoint (for tests and proxies; default AWS)",
  },
];

function validateCf(v: OptionValues): string[] {
  const problems = validateS3(v);
  const domain = (v.distro_domain_name ?? "").trim();
  if (domain !== "" && !/^(https?:\/\/)?[a-z0-9.-]+(:\d+)?(\/.*)?$/i.test(domain)) {
    problems.push(
      `Setting "distro_domain_name" must be a domain such as d111111abcdef8.cloudfront.net, not "${domain}"`,
    );
  }
  const id = (v.distribution_id ?? "").trim();
  if (id !== "" && !/^[A-Z0-9]+$/i.test(id)) {
    problems.push(`Setting "distribution_id" must look like EDFDVBD6EXAMPLE, not "${id}"`);
  }
  return problems;
}

class CloudFront implements Transport, Stater, Lister, Mover, Flusher {
  readonly #s3: S3Transport;
  readonly #base: string;
  readonly #inv?: Invalidator;
  readonly #invalidateNew: boolean;
  readonly #ctx: TransportContext;
  #warnedHead = false;

  constructor(settings: OptionValues, ctx: TransportContext) {
    this.#s3 = new S3Transport(settings, ctx);
    this.#ctx = ctx;
    const domain = settings.distro_domain_name!.trim().replace(/\/+$/, "");
    this.#base = (/^https?:\/\//i.test(domain) ? domain : `https://${domain}`) + "/";
    this.#invalidateNew = isTrue(settings.invalidate_new);
    const id = (settings.distribution_id ?? "").trim();
    if (id) {
      const key = (settings.access_key_id ?? "").trim();
      const secret = (settings.secret_access_key ?? "").trim();
      const token = (settings.session_token ?? "").trim();
      this.#inv = new Invalidator({
        distributionId: id,
        delayMs: Number(settings.invalidation_delay ?? "5") * 1000,
        ...(settings.cloudfront_endpoint ? { endpoint: settings.cloudfront_endpoint.trim() } : {}),
        ...(key && secret
          ? {
            credentials: {
              accessKeyId: key,
              secretAccessKey: secret,
              ...(token ? { sessionToken: token } : {}),
            },
          }
          : {}),
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

registerTransport({
  name: "cf",
  aliases: ["cloudfront"],
  summary: "Amazon CloudFront over an S3 bucket; batched invalidation of changed and deleted files",
  options: CF_OPTIONS,
  validate: validateCf,
  create(settings, ctx) {
    return Promise.resolve(new CloudFront(settings, ctx));
  },
});
