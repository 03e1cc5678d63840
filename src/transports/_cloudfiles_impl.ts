/**
 * The `cloudfiles` transport itself: loaded by `cloudfiles.ts` on the first
 * `create()`. See `cloudfiles.ts` for what it does.
 *
 * @module
 */
import { createHash } from "node:crypto";
import * as fsp from "node:fs/promises";
import { ClassifiedError, classify, type ErrorKind, errorMessage } from "../errors.ts";
import { addSecret, redact } from "../log.ts";
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
  callSignal,
  contentTypeFor,
  isMd5,
  md5Hex,
  MiB,
  parseSize,
  readExactly,
  SMALL_FILE,
  unquoteEtag,
} from "./_common.ts";
import { md5File } from "../util/hash.ts";
import { mapLimit } from "../util/pool.ts";
import { Semaphore } from "../util/semaphore.ts";
import {
  RACKSPACE_AUTH_V1,
  RACKSPACE_AUTH_V2,
  type SwiftAuthOptions,
  swiftLogin,
  type SwiftSession,
} from "./_swift_auth.ts";
import { MAX_OBJECT } from "./cloudfiles.ts";

/** Swift's default limit on segments per manifest. */
const MAX_SEGMENTS = 1000;

interface Settings {
  container: string;
  segContainer: string;
  prefix: string;
  url?: string;
  cdn: boolean;
  cdnSsl: boolean;
  cacheControl?: string;
  threshold: number;
  segmentSize: number;
  segmentConcurrency: number;
  createContainer: boolean;
  auth: Omit<SwiftAuthOptions, "server" | "timeoutMs" | "client">;
}

function parse(v: OptionValues): Settings {
  const str = (name: string) => {
    const s = (v[name] ?? "").trim();
    return s === "" ? undefined : s;
  };
  const version = (str("auth_version") ?? "2") as "1" | "2" | "3";
  const container = str("container")!;
  const auth: Settings["auth"] = {
    version,
    authUrl: str("auth_url") ?? (version === "1" ? RACKSPACE_AUTH_V1 : RACKSPACE_AUTH_V2),
    username: str("username") ?? "",
    endpointType: (str("endpoint_type") ?? "public") as "public" | "internal" | "admin",
  };
  for (
    const [opt, key] of [
      ["api_key", "apiKey"],
      ["password", "password"],
      ["tenant_id", "tenantId"],
      ["tenant_name", "tenantName"],
      ["user_domain", "userDomain"],
      ["project_domain", "projectDomain"],
      ["region", "region"],
    ] as const
  ) {
    const val = str(opt);
    if (val) auth[key] = val;
  }
  const s: Settings = {
    container,
    segContainer: str("segment_container") ?? `${container}_segments`,
    prefix: joinRemote(str("path") ?? ""),
    cdn: isTrue(v.cdn),
    cdnSsl: v.cdn_ssl === undefined ? true : isTrue(v.cdn_ssl),
    threshold: Math.min(MAX_OBJECT, parseSize(str("segment_threshold") ?? "1G") ?? 1024 * MiB),
    segmentSize: parseSize(str("segment_size") ?? "128M") ?? 128 * MiB,
    segmentConcurrency: Math.max(1, Number(str("segment_concurrency") ?? "2") || 2),
    createContainer: v.create_container === undefined ? true : isTrue(v.create_container),
    auth,
  };
  const url = str("url");
  if (url) s.url = url;
  const cc = str("cache_control");
  if (cc) s.cacheControl = cc;
  return s;
}

/** Aborts when no bytes moved for `ms` (a stalled upload), not when a big one is merely slow. */
class IdleWatch {
  readonly #ctl = new AbortController();
  readonly #ms: number;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(ms: number) {
    this.#ms = ms;
    this.touch();
  }

  get signal(): AbortSignal {
    return this.#ctl.signal;
  }

  touch(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(
      () => this.#ctl.abort(new DOMException("Idle timeout", "TimeoutError")),
      this.#ms,
    );
  }

  stop(): void {
    clearTimeout(this.#timer);
  }

  wrap(body: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
    return body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform: (chunk, c) => {
          this.touch();
          c.enqueue(chunk);
        },
      }),
    );
  }
}

/** Set by a file stream when the file turned out shorter than announced. */
interface StreamState {
  shrank: boolean;
}

/**
 * A byte range of a local file as a stream, opened on first read and closed
 * at the end or on cancel; `onData` sees every chunk (for hashing).
 */
function fileStream(
  localPath: string,
  start: number,
  length: number,
  state: StreamState,
  onData?: (chunk: Uint8Array) => void,
): ReadableStream<Uint8Array> {
  let fh: fsp.FileHandle | undefined;
  let pos = start;
  let left = length;
  const close = async () => {
    const h = fh;
    fh = undefined;
    left = 0;
    await h?.close().catch(() => {});
  };
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      if (left <= 0) {
        await close();
        c.close();
        return;
      }
      fh ??= await fsp.open(localPath, "r");
      const buf = new Uint8Array(Math.min(256 * 1024, left));
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) {
        await close();
        state.shrank = true;
        c.error(new Error("The local file shrank while uploading"));
        return;
      }
      const chunk = buf.subarray(0, bytesRead);
      pos += bytesRead;
      left -= bytesRead;
      onData?.(chunk);
      c.enqueue(chunk);
    },
    async cancel() {
      await close();
    },
  });
}

interface Req {
  method: string;
  /** Container (the main one when absent) and object name; neither means the account. */
  container?: string;
  name?: string;
  query?: string;
  /** A full URL instead (CDN management). */
  url?: (session: SwiftSession) => string;
  headers?: Record<string, string>;
  /** Called for every attempt (a 401 makes a second one). */
  body?: () => BodyInit | null;
  signal: AbortSignal;
  /** Idle timeout (uploads of unknown duration) instead of a whole-call timeout. */
  idle?: boolean;
  /** State of a file stream body, to tell a shrunken file from a network error. */
  stream?: StreamState;
  /** For messages. */
  action: string;
  path: string;
}

/** One Swift container (settings validated by `cloudfiles.ts`). */
export class CloudFiles implements Transport, Stater, Lister, Mover {
  readonly #s: Settings;
  readonly #ctx: TransportContext;
  #client?: Deno.HttpClient;
  #session?: SwiftSession;
  #login?: Promise<SwiftSession>;
  readonly #containers = new Map<string, Promise<void>>();
  /** Bounds calls in flight (segments included) to maxConnections. */
  readonly #slots: Semaphore;
  #cdnBase?: string;
  #cdnResolving?: Promise<void>;
  #closed = false;
  readonly #closing = new AbortController();
  #logins = 0;

  constructor(settings: OptionValues, ctx: TransportContext) {
    this.#s = parse(settings);
    this.#ctx = ctx;
    this.#slots = new Semaphore(ctx.maxConnections);
    for (const secret of [this.#s.auth.apiKey, this.#s.auth.password]) {
      if (secret) addSecret(secret);
    }
  }

  /** Logins so far (a new one after expiry or a refused token). */
  get logins(): number {
    return this.#logins;
  }

  get #http(): Deno.HttpClient {
    if (this.#closed) {
      throw new ClassifiedError(`Server "${this.#ctx.serverName}" is closed`, "retry");
    }
    this.#client ??= Deno.createHttpClient({ poolMaxIdlePerHost: this.#ctx.maxConnections });
    return this.#client;
  }

  #name(rel: string): string {
    return joinRemote(this.#s.prefix, rel);
  }

  /**
   * The current session; logs in (once for all concurrent callers) when
   * there is none, it expires within a minute, or `stale` was refused.
   */
  async #sessionFor(stale?: SwiftSession): Promise<SwiftSession> {
    const cur = this.#session;
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
      ...this.#s.auth,
      server: this.#ctx.serverName,
      timeoutMs: this.#ctx.timeoutMs,
      client: this.#http,
    }, this.#closing.signal);
    this.#logins++;
    addSecret(s.token);
    this.#session = s;
    this.#ctx.log.debug("Logged in", { storageUrl: s.storageUrl, cdn: s.cdnUrl ?? "none" });
    return s;
  }

  #fail(
    action: string,
    path: string,
    text: string,
    kind: ErrorKind,
    cause?: unknown,
  ): ClassifiedError {
    const prep = action === "upload" ? "to" : "on";
    return new ClassifiedError(
      redact(`Cannot ${action} "${path}" ${prep} server "${this.#ctx.serverName}": ${text}`),
      kind,
      { cause },
    );
  }

  /** One HTTP call with the token; a 401 renews the token and tries once more. */
  async #request(r: Req): Promise<Response> {
    let stale: SwiftSession | undefined;
    for (let attempt = 0;; attempt++) {
      const session = await this.#sessionFor(stale);
      try {
        await this.#slots.acquire(r.signal);
      } catch (err) {
        throw this.#fail(r.action, r.path, "cancelled", "retry", err);
      }
      const url = r.url ? r.url(session) : this.#urlOf(session, r.container, r.name, r.query);
      const watch = r.idle ? new IdleWatch(this.#ctx.timeoutMs) : undefined;
      const sig = watch
        ? AbortSignal.any([r.signal, watch.signal])
        : callSignal(r.signal, this.#ctx.timeoutMs);
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
        if (r.signal.aborted) throw this.#fail(r.action, r.path, "cancelled", "retry", err);
        if (sig.aborted) {
          throw this.#fail(
            r.action,
            r.path,
            `no answer within ${this.#ctx.timeoutMs / 1000} s`,
            "server",
            err,
          );
        }
        if (r.stream?.shrank) {
          throw this.#fail(r.action, r.path, "the local file shrank while uploading", "retry", err);
        }
        const kind = classify(err);
        throw this.#fail(
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
        this.#ctx.log.info("Token refused (401); logging in again");
        stale = session;
        if (this.#session === session) this.#session = undefined;
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
  async #httpError(
    res: Response,
    action: string,
    path: string,
    container = this.#s.container,
  ): Promise<ClassifiedError> {
    const text = (await res.text().catch(() => "")).replace(/<[^>]+>/g, " ").replace(/\s+/g, " ")
      .trim().slice(0, 200);
    const detail = (human: string) => `${human} (HTTP ${res.status}${text ? `: ${text}` : ""})`;
    const s = res.status;
    if (s === 401) {
      return this.#fail(action, path, detail("the new token was refused too"), "server");
    }
    if (s === 403) return this.#fail(action, path, detail("access denied"), "server");
    if (s === 404) {
      return this.#fail(action, path, detail(`container "${container}" does not exist`), "server");
    }
    if (s === 422) {
      return this.#fail(
        action,
        path,
        detail(
          "the server's MD5 of the received bytes differs from the local file's (changed or corrupted in transit)",
        ),
        "retry",
      );
    }
    if (s === 408 || s === 499) {
      return this.#fail(action, path, detail("the transfer was too slow"), "retry");
    }
    if (s === 413) {
      return this.#fail(action, path, detail("the object is too large for the server"), "fatal");
    }
    if (s === 429 || s === 498) {
      return this.#fail(action, path, detail("requests are rate-limited"), "server");
    }
    if (s === 500) return this.#fail(action, path, detail("internal server error"), "retry");
    if (s === 507) return this.#fail(action, path, detail("the server is out of space"), "server");
    if (s >= 500) return this.#fail(action, path, detail("server error"), "server");
    return this.#fail(action, path, detail("refused"), "fatal");
  }

  /** Creates a container once (PUT answers 201 or 202 when it exists). */
  async #createContainer(container: string, signal: AbortSignal): Promise<boolean> {
    if (!this.#s.createContainer) return false;
    let p = this.#containers.get(container);
    if (!p) {
      p = (async () => {
        const res = await this.#request({
          method: "PUT",
          container,
          signal,
          action: "create container",
          path: container,
        });
        if (res.status !== 201 && res.status !== 202) {
          throw await this.#httpError(res, "create container", container, container);
        }
        await res.body?.cancel();
        if (res.status === 201) this.#ctx.log.info(`Created container "${container}"`);
      })();
      this.#containers.set(container, p);
      p.catch(() => this.#containers.delete(container));
    }
    await p;
    return true;
  }

  /** PUT of an object, creating its container on a 404. */
  async #putObject(r: Req & { container: string }, expect = [201]): Promise<Response> {
    for (let attempt = 0;; attempt++) {
      const res = await this.#request(r);
      if (expect.includes(res.status)) return res;
      if (res.status === 404 && attempt === 0) {
        await res.body?.cancel();
        if (await this.#createContainer(r.container, r.signal)) continue;
        throw this.#fail(
          r.action,
          r.path,
          `container "${r.container}" does not exist (create_container is off)`,
          "server",
        );
      }
      throw await this.#httpError(res, r.action, r.path, r.container);
    }
  }

  async put(localPath: string, remotePath: string, options: PutOptions): Promise<PutResult> {
    const rel = safeRemotePath(remotePath);
    if (this.#s.cdn) await this.#resolveCdn(options.signal);
    if (options.size >= this.#s.threshold && options.size > 0) {
      return await this.#putSlo(localPath, rel, options);
    }
    const describe = () => `Cannot upload "${rel}" to server "${this.#ctx.serverName}"`;
    let md5: string;
    let body: () => BodyInit;
    const stream: StreamState = { shrank: false };
    try {
      if (options.size <= SMALL_FILE) {
        const data = await readExactly(localPath, options.size, describe);
        md5 = md5Hex(data);
        body = () => data;
      } else {
        md5 = options.md5 ?? await md5File(localPath, options.signal);
        body = () => fileStream(localPath, 0, options.size, stream);
      }
    } catch (err) {
      if (err instanceof ClassifiedError) throw err;
      throw this.#fail(
        "upload",
        rel,
        errorMessage(err),
        classify(err) === "server" ? "retry" : classify(err),
        err,
      );
    }
    const res = await this.#putObject({
      method: "PUT",
      container: this.#s.container,
      name: this.#name(rel),
      headers: {
        ETag: md5,
        "Content-Type": contentTypeFor(rel, options),
        ...(options.contentEncoding ? { "Content-Encoding": options.contentEncoding } : {}),
        ...(this.#s.cacheControl ? { "Cache-Control": this.#s.cacheControl } : {}),
      },
      body,
      stream,
      signal: options.signal,
      idle: options.size > SMALL_FILE,
      action: "upload",
      path: rel,
    });
    await res.body?.cancel();
    const etag = unquoteEtag(res.headers.get("etag"));
    if (etag && etag.toLowerCase() !== md5) {
      throw this.#fail(
        "upload",
        rel,
        `the server's ETag "${etag}" differs from the local MD5 "${md5}"`,
        "retry",
      );
    }
    return { size: options.size, etag: etag ?? md5, md5 };
  }

  /** The segment names of the SLO stored at `name`, or [] when it is not one. */
  async #oldSegments(name: string, rel: string, signal: AbortSignal): Promise<string[]> {
    const res = await this.#request({
      method: "GET",
      container: this.#s.container,
      name,
      query: "multipart-manifest=get",
      signal,
      action: "upload",
      path: rel,
    });
    if (res.status === 404) {
      await res.body?.cancel();
      return [];
    }
    if (!res.ok) throw await this.#httpError(res, "upload", rel);
    if (!/^true$/i.test(res.headers.get("x-static-large-object") ?? "")) {
      await res.body?.cancel();
      return [];
    }
    const manifest = await res.json().catch(() => []) as { name?: string }[];
    return manifest.map((m) => (m.name ?? "").replace(/^\/+/, "")).filter(Boolean);
  }

  async #deleteSegments(paths: string[], signal: AbortSignal): Promise<void> {
    await mapLimit(paths, 4, async (p) => {
      const slash = p.indexOf("/");
      const container = decodeURIComponent(p.slice(0, slash));
      const name = decodeURIComponent(p.slice(slash + 1));
      const res = await this.#request({
        method: "DELETE",
        container,
        name,
        signal,
        action: "delete segment",
        path: p,
      });
      await res.body?.cancel();
    }).catch((err) => this.#ctx.log.warn(`Cannot delete old segments: ${errorMessage(err)}`));
  }

  /** Static Large Object: segments (each checked by MD5), then the manifest, then cleanup of replaced segments. */
  async #putSlo(localPath: string, rel: string, options: PutOptions): Promise<PutResult> {
    const { signal, size } = options;
    const name = this.#name(rel);
    let md5: string;
    try {
      md5 = options.md5 ?? await md5File(localPath, signal);
    } catch (err) {
      throw this.#fail(
        "upload",
        rel,
        errorMessage(err),
        classify(err) === "server" ? "retry" : classify(err),
        err,
      );
    }
    const old = await this.#oldSegments(name, rel, signal);
    const segSize = Math.max(this.#s.segmentSize, Math.ceil(size / MAX_SEGMENTS));
    const count = Math.ceil(size / segSize);
    // A unique folder per upload: a concurrent or failed upload never touches the segments in use.
    const folder = `${name}/slo/${Date.now()}-${
      crypto.randomUUID().slice(0, 8)
    }/${size}/${segSize}`;
    const uploaded: string[] = [];
    const segContainer = this.#s.segContainer;
    // Once per run: segment PUTs into a missing container would each be refused after sending data.
    await this.#createContainer(segContainer, signal);
    try {
      const segments = await mapLimit(
        Array.from({ length: count }, (_, i) => i),
        this.#s.segmentConcurrency,
        async (i) => {
          const segName = `${folder}/${String(i).padStart(8, "0")}`;
          const start = i * segSize;
          const len = Math.min(segSize, size - start);
          for (let attempt = 1;; attempt++) {
            let hash = createHash("md5");
            const stream: StreamState = { shrank: false };
            try {
              const res = await this.#putObject({
                method: "PUT",
                container: segContainer,
                name: segName,
                headers: { "Content-Type": "application/octet-stream" },
                body: () => {
                  // Each attempt hashes its own stream: a cancelled one may still be read.
                  const h = createHash("md5");
                  hash = h;
                  return fileStream(localPath, start, len, stream, (c) => h.update(c));
                },
                stream,
                signal,
                idle: true,
                action: "upload",
                path: rel,
              });
              await res.body?.cancel();
              uploaded.push(`${encodeURIComponent(segContainer)}/${encodePath(segName)}`);
              const sent = hash.digest("hex");
              const etag = unquoteEtag(res.headers.get("etag"));
              if (etag?.toLowerCase() !== sent) {
                throw this.#fail(
                  "upload",
                  rel,
                  `the server's ETag "${etag}" differs from the MD5 "${sent}"`,
                  "retry",
                );
              }
              return { path: `/${segContainer}/${segName}`, etag: sent, size_bytes: len };
            } catch (err) {
              if (!(err instanceof ClassifiedError)) throw err;
              const e = new ClassifiedError(
                `${err.message} (segment ${i + 1} of ${count})`,
                err.kind,
                { cause: err },
              );
              if (err.kind !== "retry" || attempt >= 2 || signal.aborted) throw e;
              this.#ctx.log.warn(`${e.message}; retrying the segment`);
            }
          }
        },
      );
      const manifestEtag = md5Hex(new TextEncoder().encode(segments.map((s) => s.etag).join("")));
      const res = await this.#putObject({
        method: "PUT",
        container: this.#s.container,
        name,
        query: "multipart-manifest=put",
        headers: {
          "Content-Type": contentTypeFor(rel, options),
          ETag: manifestEtag,
          "X-Object-Meta-Md5": md5,
          ...(options.contentEncoding ? { "Content-Encoding": options.contentEncoding } : {}),
          ...(this.#s.cacheControl ? { "Cache-Control": this.#s.cacheControl } : {}),
        },
        body: () => JSON.stringify(segments),
        signal,
        action: "upload",
        path: rel,
      });
      await res.body?.cancel();
      uploaded.length = 0;
      const head = await this.#head(name, rel, signal);
      if (!head || head.size !== size) {
        throw this.#fail(
          "upload",
          rel,
          `the server stores ${head?.size ?? "no"} bytes, expected ${size}`,
          "retry",
        );
      }
      if (old.length > 0) await this.#deleteSegments(old, signal);
      return { size, etag: unquoteEtag(res.headers.get("etag")) ?? manifestEtag, md5 };
    } catch (err) {
      if (uploaded.length > 0) {
        await this.#deleteSegments(uploaded, AbortSignal.timeout(this.#ctx.timeoutMs));
      }
      throw err;
    }
  }

  async #head(name: string, rel: string, signal: AbortSignal): Promise<RemoteStat | null> {
    const res = await this.#request({
      method: "HEAD",
      container: this.#s.container,
      name,
      signal,
      action: "stat",
      path: rel,
    });
    await res.body?.cancel();
    if (res.status === 404) return null;
    if (!res.ok) throw await this.#httpError(res, "stat", rel);
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

  /** HEAD: size, ETag, MD5 (the ETag, or `X-Object-Meta-Md5` for large objects), mtime; null when missing. */
  async stat(remotePath: string, options: CallOptions): Promise<RemoteStat | null> {
    const rel = safeRemotePath(remotePath);
    return await this.#head(this.#name(rel), rel, options.signal);
  }

  /**
   * Deletes an object; missing is fine. A HEAD first tells whether it is a
   * Static Large Object, whose segments are deleted with it (Swift refuses
   * `multipart-manifest=delete` on plain objects).
   */
  async delete(remotePath: string, options: CallOptions): Promise<void> {
    const rel = safeRemotePath(remotePath);
    const name = this.#name(rel);
    const head = await this.#request({
      method: "HEAD",
      container: this.#s.container,
      name,
      signal: options.signal,
      action: "delete",
      path: rel,
    });
    await head.body?.cancel();
    if (head.status === 404) return;
    if (!head.ok) throw await this.#httpError(head, "delete", rel);
    const slo = /^true$/i.test(head.headers.get("x-static-large-object") ?? "");
    await this.#delete(name, rel, slo, options.signal);
  }

  async #delete(name: string, rel: string, segments: boolean, signal: AbortSignal): Promise<void> {
    const res = await this.#request({
      method: "DELETE",
      container: this.#s.container,
      name,
      ...(segments
        ? { query: "multipart-manifest=delete", headers: { Accept: "application/json" } }
        : {}),
      signal,
      action: "delete",
      path: rel,
    });
    if (res.status === 404) {
      await res.body?.cancel();
      return;
    }
    if (!res.ok) throw await this.#httpError(res, "delete", rel);
    if (!segments) {
      await res.body?.cancel();
      return;
    }
    // The SLO middleware answers 200 with a report of every item; segments already gone are fine.
    const report = await res.json().catch(() => undefined) as
      | { Errors?: unknown[]; "Response Status"?: string }
      | undefined;
    const errors = report?.Errors ?? [];
    if (!report || errors.length > 0 || !/^2/.test(report["Response Status"] ?? "")) {
      throw this.#fail(
        "delete",
        rel,
        `the server could not delete the large object and its segments (${
          report
            ? `${report["Response Status"]}: ${JSON.stringify(errors).slice(0, 200)}`
            : "unreadable report"
        })`,
        "retry",
      );
    }
  }

  /**
   * Server-side move: PUT with `X-Copy-From` (`multipart-manifest=get` copies
   * a large object's manifest, not its data), then DELETE of the old name
   * (its segments are kept: the new manifest uses them).
   */
  async move(from: string, to: string, options: CallOptions): Promise<void> {
    const src = safeRemotePath(from);
    const dst = safeRemotePath(to);
    const c = encodeURIComponent(this.#s.container);
    const res = await this.#request({
      method: "PUT",
      container: this.#s.container,
      name: this.#name(dst),
      query: "multipart-manifest=get",
      headers: { "X-Copy-From": `/${c}/${encodePath(this.#name(src))}`, "Content-Length": "0" },
      signal: options.signal,
      action: "move",
      path: src,
    });
    if (res.status === 404) {
      await res.body?.cancel();
      throw this.#fail("move", src, "it does not exist", "fatal");
    }
    if (res.status !== 201) throw await this.#httpError(res, "move", src);
    await res.body?.cancel();
    await this.#delete(this.#name(src), src, false, options.signal);
  }

  /** JSON container listing below `prefix`, 10,000 names a page. */
  async *list(prefix: string, options: CallOptions): AsyncIterable<{ path: string } & RemoteStat> {
    const root = this.#s.prefix ? this.#s.prefix + "/" : "";
    const p = prefix.replace(/^\/+|\/+$/g, "") === "" ? root : root + safeRemotePath(prefix) + "/";
    let marker = "";
    for (;;) {
      const query = `format=json&limit=10000&prefix=${encodeURIComponent(p)}${
        marker ? `&marker=${encodeURIComponent(marker)}` : ""
      }`;
      const res = await this.#request({
        method: "GET",
        container: this.#s.container,
        query,
        signal: options.signal,
        action: "list",
        path: prefix || "/",
      });
      if (res.status === 404) {
        await res.body?.cancel();
        return;
      }
      if (!res.ok) throw await this.#httpError(res, "list", prefix || "/");
      const page = await res.json() as {
        name: string;
        bytes: number;
        hash?: string;
        last_modified?: string;
        slo_etag?: string;
      }[];
      if (page.length === 0) return;
      for (const o of page) {
        if (!o.name.startsWith(root) || o.name.endsWith("/")) continue;
        const rel = o.name.slice(root.length);
        if (isTempName(basename(rel))) continue;
        const mtime = Date.parse(
          (o.last_modified ?? "") + (o.last_modified?.endsWith("Z") ? "" : "Z"),
        );
        // A large object's listed hash is its manifest's; its content ETag is slo_etag and its MD5 unknown here.
        const etag = o.slo_etag ? unquoteEtag(o.slo_etag) : o.hash;
        yield {
          path: rel,
          size: o.bytes,
          ...(etag ? { etag } : {}),
          ...(!o.slo_etag && isMd5(o.hash) ? { md5: o.hash.toLowerCase() } : {}),
          ...(Number.isFinite(mtime) ? { mtimeMs: mtime } : {}),
        };
      }
      marker = page[page.length - 1]!.name;
    }
  }

  /** Looks up (and enables when needed) the container's CDN URI. */
  async #resolveCdn(signal: AbortSignal): Promise<void> {
    if (this.#cdnBase) return;
    this.#cdnResolving ??= (async () => {
      const session = await this.#sessionFor();
      if (!session.cdnUrl) {
        throw this.#fail(
          "look up the CDN URI of",
          this.#s.container,
          "cdn is on but the service catalog has no CDN endpoint (rax:object-cdn); set url instead",
          "server",
        );
      }
      const cdnUrl = (s: SwiftSession) => `${s.cdnUrl}/${encodeURIComponent(this.#s.container)}`;
      const common = {
        signal,
        action: "look up the CDN URI of",
        path: this.#s.container,
        url: cdnUrl,
      };
      let res = await this.#request({ method: "HEAD", ...common });
      await res.body?.cancel();
      if (
        res.status === 404 || (res.ok && !/^true$/i.test(res.headers.get("x-cdn-enabled") ?? ""))
      ) {
        const put = await this.#request({
          method: "PUT",
          ...common,
          headers: { "X-Cdn-Enabled": "True" },
        });
        if (!put.ok) throw await this.#httpError(put, "enable the CDN of", this.#s.container);
        await put.body?.cancel();
        this.#ctx.log.info(`Enabled the CDN of container "${this.#s.container}"`);
        res = await this.#request({ method: "HEAD", ...common });
        await res.body?.cancel();
      }
      if (!res.ok) throw await this.#httpError(res, "look up the CDN URI of", this.#s.container);
      const uri = res.headers.get(this.#s.cdnSsl ? "x-cdn-ssl-uri" : "x-cdn-uri") ??
        res.headers.get("x-cdn-uri");
      if (!uri) {
        throw this.#fail(
          "look up the CDN URI of",
          this.#s.container,
          "the CDN answer has no X-Cdn-Uri",
          "server",
        );
      }
      this.#cdnBase = uri.replace(/\/+$/, "");
    })();
    try {
      await this.#cdnResolving;
    } finally {
      this.#cdnResolving = undefined;
    }
  }

  /**
   * The public URL: `url` + name when set; else the container's CDN URI
   * (`cdn`); else the object's storage URL (for public-read containers).
   * The last two are known after the first call to the server.
   */
  url(remotePath: string): string {
    const name = this.#name(safeRemotePath(remotePath));
    if (this.#s.url) return joinUrl(this.#s.url, name);
    if (this.#s.cdn) {
      if (!this.#cdnBase) {
        throw new ClassifiedError(
          `Cannot make the URL of "${remotePath}" on server "${this.#ctx.serverName}": the CDN URI is not known yet`,
          "retry",
        );
      }
      return joinUrl(this.#cdnBase, name);
    }
    if (!this.#session) {
      throw new ClassifiedError(
        `Cannot make the URL of "${remotePath}" on server "${this.#ctx.serverName}": not logged in yet (set url to avoid this)`,
        "retry",
      );
    }
    return joinUrl(`${this.#session.storageUrl}/${encodeURIComponent(this.#s.container)}`, name);
  }

  /** Closes pooled connections. Idempotent. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.#closing.abort();
    this.#client?.close();
    this.#client = undefined;
    return Promise.resolve();
  }
}
