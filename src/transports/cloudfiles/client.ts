/**
 * The Swift client under the `cloudfiles` transport: login and sessions,
 * requests with retries of a refused token, errors, containers, object PUT
 * and HEAD.
 *
 * @module
 */
import { ClassifiedError, classify, type ErrorKind, errorMessage } from "../../errors.ts";
import { addSecret, redact } from "../../log.ts";
import type { OptionValues } from "../../options.ts";
import { encodePath, joinRemote } from "../paths.ts";
import type { RemoteStat, TransportContext } from "../transport.ts";
import { callSignal, isMd5, unquoteEtag } from "../_common.ts";
import { Semaphore } from "../../util/semaphore.ts";
import { swiftLogin, type SwiftSession } from "../_swift_auth.ts";
import { IdleWatch, parse, type Req, type Settings } from "./support.ts";

/** Requests to one Swift account (settings validated by `cloudfiles.ts`). */
export class SwiftClient {
  protected readonly s: Settings;
  protected readonly ctx: TransportContext;
  protected client?: Deno.HttpClient;
  protected session?: SwiftSession;
  #login?: Promise<SwiftSession>;
  readonly #containers = new Map<string, Promise<void>>();
  /** Bounds calls in flight (segments included) to maxConnections. */
  readonly #slots: Semaphore;
  protected cdnBase?: string;
  protected cdnResolving?: Promise<void>;
  protected closed = false;
  protected readonly closing = new AbortController();
  #logins = 0;

  constructor(settings: OptionValues, ctx: TransportContext) {
    this.s = parse(settings);
    this.ctx = ctx;
    this.#slots = new Semaphore(ctx.maxConnections);
    for (const secret of [this.s.auth.apiKey, this.s.auth.password]) {
      if (secret) addSecret(secret);
    }
  }

  /** Logins so far (a new one after expiry or a refused token). */
  get logins(): number {
    return this.#logins;
  }

  get #http(): Deno.HttpClient {
    if (this.closed) {
      throw new ClassifiedError(`Server "${this.ctx.serverName}" is closed`, "retry");
    }
    this.client ??= Deno.createHttpClient({ poolMaxIdlePerHost: this.ctx.maxConnections });
    return this.client;
  }

  protected name(rel: string): string {
    return joinRemote(this.s.prefix, rel);
  }

  /**
   * The current session; logs in (once for all concurrent callers) when
   * there is none, it expires within a minute, or `stale` was refused.
   */
  protected async sessionFor(stale?: SwiftSession): Promise<SwiftSession> {
    const cur = this.session;
    if (cur && cur !== stale && !(cur.expiresAt && Date.now() > cur.expiresAt - 60_000)) return cur;
    if (!this.#login) {
      const login = this.#logIn();
      this.#login = login;
      login.finally(() => {
        if (this.#login === login) this.#login = undefined;
      }).catch(() => {});
    }
    return await this.#login;
  }

  async #logIn(): Promise<SwiftSession> {
    const s = await swiftLogin({
      ...this.s.auth,
      server: this.ctx.serverName,
      timeoutMs: this.ctx.timeoutMs,
      client: this.#http,
    }, this.closing.signal);
    this.#logins++;
    addSecret(s.token);
    this.session = s;
    this.ctx.log.debug("Logged in", { storageUrl: s.storageUrl, cdn: s.cdnUrl ?? "none" });
    return s;
  }

  protected fail(
    action: string,
    path: string,
    text: string,
    kind: ErrorKind,
    cause?: unknown,
  ): ClassifiedError {
    const prep = action === "upload" ? "to" : "on";
    return new ClassifiedError(
      redact(`Cannot ${action} "${path}" ${prep} server "${this.ctx.serverName}": ${text}`),
      kind,
      { cause },
    );
  }

  /** One HTTP call with the token; a 401 renews the token and tries once more. */
  protected async request(r: Req): Promise<Response> {
    let stale: SwiftSession | undefined;
    for (let attempt = 0;; attempt++) {
      const session = await this.sessionFor(stale);
      try {
        await this.#slots.acquire(r.signal);
      } catch (err) {
        throw this.fail(r.action, r.path, "cancelled", "retry", err);
      }
      const url = r.url ? r.url(session) : this.#urlOf(session, r.container, r.name, r.query);
      const watch = r.idle ? new IdleWatch(this.ctx.timeoutMs) : undefined;
      const sig = watch
        ? AbortSignal.any([r.signal, watch.signal])
        : callSignal(r.signal, this.ctx.timeoutMs);
      let body = r.body?.() ?? null;
      if (watch && body instanceof ReadableStream) body = watch.wrap(body);
      let res: Response;
      try {
        res = await fetch(url, {
          method: r.method,
          headers: { ...r.headers, "X-Auth-Token": session.token },
          body,
          signal: sig,
          client: this.#http,
        });
      } catch (err) {
        if (body instanceof ReadableStream) await body.cancel().catch(() => {});
        if (r.signal.aborted) throw this.fail(r.action, r.path, "cancelled", "retry", err);
        if (sig.aborted) {
          throw this.fail(
            r.action,
            r.path,
            `no answer within ${this.ctx.timeoutMs / 1000} s`,
            "server",
            err,
          );
        }
        if (r.stream?.shrank) {
          throw this.fail(r.action, r.path, "the local file shrank while uploading", "retry", err);
        }
        const kind = classify(err);
        throw this.fail(
          r.action,
          r.path,
          errorMessage(err),
          kind === "fatal" ? "fatal" : "server",
          err,
        );
      } finally {
        watch?.stop();
        this.#slots.release();
      }
      if (res.status === 401 && attempt === 0) {
        await res.body?.cancel();
        this.ctx.log.info("Token refused (401); logging in again");
        stale = session;
        if (this.session === session) this.session = undefined;
        continue;
      }
      return res;
    }
  }

  #urlOf(session: SwiftSession, container?: string, name?: string, query?: string): string {
    let u = session.storageUrl;
    if (container !== undefined) u += "/" + encodeURIComponent(container);
    if (name !== undefined) u += "/" + encodePath(name);
    return query ? `${u}?${query}` : u;
  }

  /** Maps a Swift answer that is not a success to a classified error. */
  protected async httpError(
    res: Response,
    action: string,
    path: string,
    container = this.s.container,
  ): Promise<ClassifiedError> {
    const text = (await res.text().catch(() => "")).replace(/<[^>]+>/g, " ").replace(/\s+/g, " ")
      .trim().slice(0, 200);
    const detail = (human: string) => `${human} (HTTP ${res.status}${text ? `: ${text}` : ""})`;
    const s = res.status;
    if (s === 401) {
      return this.fail(action, path, detail("the new token was refused too"), "server");
    }
    if (s === 403) return this.fail(action, path, detail("access denied"), "server");
    if (s === 404) {
      return this.fail(action, path, detail(`container "${container}" does not exist`), "server");
    }
    if (s === 422) {
      return this.fail(
        action,
        path,
        detail(
          "the server's MD5 of the received bytes differs from the local file's (changed or corrupted in transit)",
        ),
        "retry",
      );
    }
    if (s === 408 || s === 499) {
      return this.fail(action, path, detail("the transfer was too slow"), "retry");
    }
    if (s === 413) {
      return this.fail(action, path, detail("the object is too large for the server"), "fatal");
    }
    if (s === 429 || s === 498) {
      return this.fail(action, path, detail("requests are rate-limited"), "server");
    }
    if (s === 500) return this.fail(action, path, detail("internal server error"), "retry");
    if (s === 507) return this.fail(action, path, detail("the server is out of space"), "server");
    if (s >= 500) return this.fail(action, path, detail("server error"), "server");
    return this.fail(action, path, detail("refused"), "fatal");
  }

  /** Creates a container once (PUT answers 201 or 202 when it exists). */
  protected async createContainer(container: string, signal: AbortSignal): Promise<boolean> {
    if (!this.s.createContainer) return false;
    let p = this.#containers.get(container);
    if (!p) {
      p = (async () => {
        const res = await this.request({
          method: "PUT",
          container,
          signal,
          action: "create container",
          path: container,
        });
        if (res.status !== 201 && res.status !== 202) {
          throw await this.httpError(res, "create container", container, container);
        }
        await res.body?.cancel();
        if (res.status === 201) this.ctx.log.info(`Created container "${container}"`);
      })();
      this.#containers.set(container, p);
      p.catch(() => this.#containers.delete(container));
    }
    await p;
    return true;
  }

  /** PUT of an object, creating its container on a 404. */
  protected async putObject(r: Req & { container: string }, expect = [201]): Promise<Response> {
    for (let attempt = 0;; attempt++) {
      const res = await this.request(r);
      if (expect.includes(res.status)) return res;
      if (res.status === 404 && attempt === 0) {
        await res.body?.cancel();
        if (await this.createContainer(r.container, r.signal)) continue;
        throw this.fail(
          r.action,
          r.path,
          `container "${r.container}" does not exist (create_container is off)`,
          "server",
        );
      }
      throw await this.httpError(res, r.action, r.path, r.container);
    }
  }

  protected async head(name: string, rel: string, signal: AbortSignal): Promise<RemoteStat | null> {
    const res = await this.request({
      method: "HEAD",
      container: this.s.container,
      name,
      signal,
      action: "stat",
      path: rel,
    });
    await res.body?.cancel();
    if (res.status === 404) return null;
    if (!res.ok) throw await this.httpError(res, "stat", rel);
    const etag = unquoteEtag(res.headers.get("etag"));
    const slo = /^true$/i.test(res.headers.get("x-static-large-object") ?? "");
    const meta = res.headers.get("x-object-meta-md5") ?? undefined;
    const md5 = isMd5(meta)
      ? meta.toLowerCase()
      : !slo && isMd5(etag)
      ? etag.toLowerCase()
      : undefined;
    const mtime = Date.parse(res.headers.get("last-modified") ?? "");
    const ts = Number(res.headers.get("x-timestamp"));
    return {
      size: Number(res.headers.get("content-length") ?? "0"),
      ...(etag ? { etag } : {}),
      ...(md5 ? { md5 } : {}),
      ...(Number.isFinite(ts) && ts > 0
        ? { mtimeMs: Math.round(ts * 1000) }
        : Number.isFinite(mtime)
        ? { mtimeMs: mtime }
        : {}),
    };
  }
}
