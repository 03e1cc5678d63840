/**
 * CloudFront invalidations for the `cf` transport: changed and deleted keys
 * are collected over a window and sent as one request, within CloudFront's
 * limits (3,000 paths, 15 wildcard paths), with retries on throttling.
 *
 * @module
 */
import type { CloudFrontClient, CloudFrontClientConfig } from "@aws-sdk/client-cloudfront";
import type * as https from "node:https";
import type * as http from "node:http";
import { ClassifiedError, classify, type ErrorKind, errorMessage } from "../errors.ts";
import { redact } from "../log.ts";
import type { TransportContext } from "./transport.ts";
import { encodePath } from "./paths.ts";
import { callSignal } from "./_common.ts";
import { sdkLogger } from "./s3/support.ts";

/** Most paths in one invalidation (and in progress at once) for files. */
export const MAX_PATHS = 3000;
/** Most wildcard paths in progress at once. */
export const MAX_WILDCARDS = 15;

/**
 * Turns object keys into CloudFront invalidation paths (`/` + percent-encoded
 * key). When there are more than `maxPaths`, the directories holding the
 * most keys become wildcards (`/dir/*`, at most `maxWildcards` of them),
 * trying the deepest directories first; when nothing fits, `/*`.
 *
 * @example
 * ```ts
 * import { planInvalidation } from "./_invalidation.ts";
 * planInvalidation(["css/a.css", "img/b c.png"]); // ["/css/a.css", "/img/b%20c.png"]
 * ```
 */
export function planInvalidation(
  keys: Iterable<string>,
  maxPaths = MAX_PATHS,
  maxWildcards = MAX_WILDCARDS,
): string[] {
  const unique = [...new Set(keys)].sort();
  const file = (k: string) => "/" + encodePath(k);
  if (unique.length <= maxPaths) return unique.map(file);
  const dirs = unique.map((k) => k.split("/").slice(0, -1));
  const maxDepth = Math.max(0, ...dirs.map((d) => d.length));
  for (let depth = maxDepth; depth >= 1; depth--) {
    const groups = new Map<string, number>();
    dirs.forEach((d) => {
      if (d.length === 0) return;
      const g = d.slice(0, Math.min(depth, d.length)).join("/");
      groups.set(g, (groups.get(g) ?? 0) + 1);
    });
    const ranked = [...groups].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    const chosen: string[] = [];
    let individual = unique.length;
    for (const [g, n] of ranked) {
      if (individual + chosen.length <= maxPaths || chosen.length >= maxWildcards) break;
      chosen.push(g);
      individual -= n;
    }
    if (individual + chosen.length > maxPaths) continue;
    const covered = new Set(chosen);
    const rest = unique.filter((_, i) => {
      const d = dirs[i]!;
      return d.length === 0 || !covered.has(d.slice(0, Math.min(depth, d.length)).join("/"));
    });
    return [...chosen.map((g) => "/" + encodePath(g) + "/*"), ...rest.map(file)];
  }
  return ["/*"];
}

interface SdkError {
  name?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

const TRANSIENT = new Set([
  "Throttling",
  "ThrottlingException",
  "TooManyInvalidationsInProgress",
  "ServiceUnavailable",
  "InternalError",
  "RequestTimeout",
]);

const SERVER_CODES: Record<string, string> = {
  AccessDenied: "access denied",
  InvalidClientTokenId: "the access key ID is not known to CloudFront",
  SignatureDoesNotMatch: "the secret access key is wrong (signature mismatch)",
  ExpiredToken: "the session token has expired",
  CredentialsProviderError: "no AWS credentials found",
};

/** Settings of an {@linkcode Invalidator}. */
export interface InvalidatorOptions {
  distributionId: string;
  /** How long changes are collected before a request is sent. */
  delayMs: number;
  /** CloudFront API endpoint (tests); default AWS. */
  endpoint?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** First retry delay on throttling; doubles each time. */
  retryBaseMs?: number;
  /** Attempts per request before giving up until the next window. */
  attempts?: number;
}

/**
 * Collects keys to invalidate and sends them in batches. Sends are
 * serialised; a batch that fails goes back to the pending set and is tried
 * again after a growing delay (or on the next {@linkcode Invalidator.flush}).
 */
export class Invalidator {
  readonly #o: InvalidatorOptions;
  readonly #ctx: TransportContext;
  readonly #pending = new Set<string>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #chain: Promise<void> = Promise.resolve();
  #client?: CloudFrontClient;
  #agent?: http.Agent;
  #failures = 0;
  #closed = false;
  readonly #closing = new AbortController();
  /** Invalidation IDs sent, newest last (for logs and tests). */
  readonly sent: { id: string; paths: string[] }[] = [];

  /**
   * @param options Distribution and timing.
   * @param ctx The transport's context (server name, logger, timeout).
   */
  constructor(options: InvalidatorOptions, ctx: TransportContext) {
    this.#o = options;
    this.#ctx = ctx;
  }

  /** Keys waiting for the next request. */
  get pending(): number {
    return this.#pending.size;
  }

  /** Queues an object key for invalidation and starts the window if it is not running. */
  add(key: string): void {
    if (this.#closed) return;
    this.#pending.add(key);
    this.#schedule(this.#o.delayMs);
  }

  #schedule(ms: number): void {
    if (this.#timer !== undefined || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#send(this.#closing.signal).catch((err) => {
        if (this.#closed) return;
        this.#failures++;
        const wait = Math.min(15 * 60_000, 30_000 * 2 ** Math.min(this.#failures - 1, 5));
        this.#ctx.log.error(
          `${errorMessage(err)}; ${this.#pending.size} path(s) kept, next try in ${
            Math.round(wait / 1000)
          } s`,
        );
        this.#schedule(wait);
      });
    }, ms);
  }

  /** Sends everything pending now and waits until CloudFront has accepted it. */
  async flush(signal: AbortSignal): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    try {
      await this.#send(signal);
    } catch (err) {
      if (this.#pending.size > 0) this.#schedule(30_000);
      throw err;
    }
  }

  #send(signal: AbortSignal): Promise<void> {
    const run = this.#chain.then(() => this.#sendNow(signal));
    this.#chain = run.catch(() => {});
    return run;
  }

  async #sendNow(signal: AbortSignal): Promise<void> {
    if (this.#pending.size === 0) return;
    const keys = [...this.#pending];
    this.#pending.clear();
    const paths = planInvalidation(keys);
    const callerReference = `fileconveyor-${Date.now()}-${crypto.randomUUID()}`;
    const attempts = this.#o.attempts ?? 6;
    const base = this.#o.retryBaseMs ?? 500;
    try {
      for (let attempt = 1;; attempt++) {
        const sig = callSignal(signal, this.#ctx.timeoutMs);
        try {
          const m = await loadCloudFront();
          const out = await this.#c(m).send(
            new m.sdk.CreateInvalidationCommand({
              DistributionId: this.#o.distributionId,
              // The same caller reference on a retry makes CloudFront return the first request instead of a duplicate.
              InvalidationBatch: {
                CallerReference: callerReference,
                Paths: { Quantity: paths.length, Items: paths },
              },
            }),
            { abortSignal: sig },
          );
          const id = out.Invalidation?.Id ?? "?";
          this.sent.push({ id, paths });
          this.#failures = 0;
          this.#ctx.log.info(`Invalidation "${id}" sent for ${keys.length} changed file(s)`, {
            paths: paths.length,
            wildcards: paths.filter((p) => p.endsWith("*")).length,
          });
          return;
        } catch (err) {
          const e = this.#error(err, keys.length, signal, sig);
          if (e.kind !== "retry" || attempt >= attempts || signal.aborted) throw e;
          const wait = base * 2 ** (attempt - 1) * (0.75 + Math.random() * 0.5);
          this.#ctx.log.warn(`${e.message}; retrying in ${(wait / 1000).toFixed(1)} s`);
          await sleep(wait, signal);
        }
      }
    } catch (err) {
      for (const k of keys) this.#pending.add(k);
      throw err;
    }
  }

  #error(err: unknown, count: number, signal: AbortSignal, sig: AbortSignal): ClassifiedError {
    const head =
      `Cannot invalidate ${count} path(s) on distribution "${this.#o.distributionId}" of server "${this.#ctx.serverName}"`;
    const make = (text: string, kind: ErrorKind) =>
      new ClassifiedError(redact(`${head}: ${text}`), kind, { cause: err });
    if (signal.aborted) return make("cancelled", "retry");
    if (sig.aborted) return make(`no answer within ${this.#ctx.timeoutMs / 1000} s`, "retry");
    const e = (err ?? {}) as SdkError;
    const code = e.name ?? "";
    const status = e.$metadata?.httpStatusCode;
    const detail = (human: string) => {
      const msg = (e.message ?? "").trim();
      return `${human} (${code || `HTTP ${status}`}${
        msg && msg !== code && msg.length < 300 ? `: ${msg}` : ""
      })`;
    };
    if (code === "NoSuchDistribution") {
      return make(detail("the distribution does not exist"), "server");
    }
    if (code in SERVER_CODES) return make(detail(SERVER_CODES[code]!), "server");
    if (TRANSIENT.has(code)) return make(detail("CloudFront is busy"), "retry");
    if (status === undefined) {
      const kind = classify(err);
      return make(errorMessage(err), kind === "fatal" ? "fatal" : "retry");
    }
    if (status === 401 || status === 403) return make(detail("access denied"), "server");
    if (status >= 500 || status === 429) return make(detail(`server error ${status}`), "retry");
    return make(detail(`refused (HTTP ${status})`), "fatal");
  }

  #c(m: CloudFrontModules): CloudFrontClient {
    if (this.#client) return this.#client;
    const tls = (this.#o.endpoint ?? "https:").startsWith("https:");
    this.#agent = tls
      ? new m.https.Agent({ keepAlive: true, maxSockets: 2 })
      : new m.http.Agent({ keepAlive: true, maxSockets: 2 });
    const config: CloudFrontClientConfig = {
      region: "us-east-1",
      maxAttempts: 1,
      logger: sdkLogger(this.#ctx.log),
      requestHandler: {
        ...(tls ? { httpsAgent: this.#agent as https.Agent } : { httpAgent: this.#agent }),
        connectionTimeout: this.#ctx.timeoutMs,
        socketTimeout: this.#ctx.timeoutMs,
      },
    };
    if (this.#o.endpoint) config.endpoint = this.#o.endpoint;
    if (this.#o.credentials) config.credentials = this.#o.credentials;
    this.#client = new m.sdk.CloudFrontClient(config);
    return this.#client;
  }

  /** Stops the window timer and closes connections; pending paths are reported, not sent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#closing.abort();
    await this.#chain;
    if (this.#pending.size > 0) {
      this.#ctx.log.warn(
        `${this.#pending.size} path(s) of distribution "${this.#o.distributionId}" were not invalidated (flush before close)`,
      );
    }
    this.#client?.destroy();
    this.#agent?.destroy();
  }
}

/** The CloudFront SDK and the HTTP modules its request handler needs. */
interface CloudFrontModules {
  sdk: typeof import("@aws-sdk/client-cloudfront");
  http: typeof http;
  https: typeof https;
}

let modules: Promise<CloudFrontModules> | undefined;

/** Loads the CloudFront SDK on the first invalidation: many runs never send one. */
function loadCloudFront(): Promise<CloudFrontModules> {
  modules ??= Promise.all([
    import("@aws-sdk/client-cloudfront"),
    import("node:http"),
    import("node:https"),
  ]).then(([sdk, http, https]) => ({ sdk, http, https })).catch((err) => {
    modules = undefined;
    throw err;
  });
  return modules;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    function onAbort() {
      clearTimeout(t);
      reject(signal.reason);
    }
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
