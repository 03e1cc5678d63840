/**
 * The `cloudfiles` transport itself: loaded by `cloudfiles.ts` on the first
 * `create()`. See `cloudfiles.ts` for what it does. Requests are in
 * `client.ts`, large-file uploads in `segments.ts`, settings and streams in
 * `support.ts`.
 *
 * @module
 */
import { ClassifiedError, classify, errorMessage } from "../../errors.ts";
import { encodePath, isTempName, joinUrl, safeRemotePath } from "../paths.ts";
import type {
  CallOptions,
  Lister,
  Mover,
  PutOptions,
  PutResult,
  RemoteStat,
  Stater,
  Transport,
} from "../transport.ts";
import { basename, isMd5, md5Hex, readExactly, SMALL_FILE, unquoteEtag } from "../_common.ts";
import { contentTypeFor } from "../_content_type.ts";
import { md5File } from "../../util/hash.ts";
import type { SwiftSession } from "../_swift_auth.ts";
import { fileStream, type StreamState } from "./support.ts";
import { SegmentedUploads } from "./segments.ts";

/** One Swift container (settings validated by `cloudfiles.ts`). */
export class CloudFiles extends SegmentedUploads implements Transport, Stater, Lister, Mover {
  async put(localPath: string, remotePath: string, options: PutOptions): Promise<PutResult> {
    const rel = safeRemotePath(remotePath);
    if (this.s.cdn) await this.#resolveCdn(options.signal);
    if (options.size >= this.s.threshold && options.size > 0) {
      return await this.putSlo(localPath, rel, options);
    }
    const describe = () => `Cannot upload "${rel}" to server "${this.ctx.serverName}"`;
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
      throw this.fail(
        "upload",
        rel,
        errorMessage(err),
        classify(err) === "server" ? "retry" : classify(err),
        err,
      );
    }
    const res = await this.putObject({
      method: "PUT",
      container: this.s.container,
      name: this.name(rel),
      headers: {
        ETag: md5,
        "Content-Type": contentTypeFor(rel, options),
        ...(options.contentEncoding ? { "Content-Encoding": options.contentEncoding } : {}),
        ...(this.s.cacheControl ? { "Cache-Control": this.s.cacheControl } : {}),
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
      throw this.fail(
        "upload",
        rel,
        `the server's ETag "${etag}" differs from the local MD5 "${md5}"`,
        "retry",
      );
    }
    return { size: options.size, etag: etag ?? md5, md5 };
  }

  /** HEAD: size, ETag, MD5 (the ETag, or `X-Object-Meta-Md5` for large objects), mtime; null when missing. */
  async stat(remotePath: string, options: CallOptions): Promise<RemoteStat | null> {
    const rel = safeRemotePath(remotePath);
    return await this.head(this.name(rel), rel, options.signal);
  }

  /**
   * Deletes an object; missing is fine. A HEAD first tells whether it is a
   * Static Large Object, whose segments are deleted with it (Swift refuses
   * `multipart-manifest=delete` on plain objects).
   */
  async delete(remotePath: string, options: CallOptions): Promise<void> {
    const rel = safeRemotePath(remotePath);
    const name = this.name(rel);
    const head = await this.request({
      method: "HEAD",
      container: this.s.container,
      name,
      signal: options.signal,
      action: "delete",
      path: rel,
    });
    await head.body?.cancel();
    if (head.status === 404) return;
    if (!head.ok) throw await this.httpError(head, "delete", rel);
    const slo = /^true$/i.test(head.headers.get("x-static-large-object") ?? "");
    await this.#delete(name, rel, slo, options.signal);
  }

  async #delete(name: string, rel: string, segments: boolean, signal: AbortSignal): Promise<void> {
    const res = await this.request({
      method: "DELETE",
      container: this.s.container,
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
    if (!res.ok) throw await this.httpError(res, "delete", rel);
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
      throw this.fail(
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
    const c = encodeURIComponent(this.s.container);
    const res = await this.request({
      method: "PUT",
      container: this.s.container,
      name: this.name(dst),
      query: "multipart-manifest=get",
      headers: { "X-Copy-From": `/${c}/${encodePath(this.name(src))}`, "Content-Length": "0" },
      signal: options.signal,
      action: "move",
      path: src,
    });
    if (res.status === 404) {
      await res.body?.cancel();
      throw this.fail("move", src, "it does not exist", "fatal");
    }
    if (res.status !== 201) throw await this.httpError(res, "move", src);
    await res.body?.cancel();
    await this.#delete(this.name(src), src, false, options.signal);
  }

  /** JSON container listing below `prefix`, 10,000 names a page. */
  async *list(prefix: string, options: CallOptions): AsyncIterable<{ path: string } & RemoteStat> {
    const root = this.s.prefix ? this.s.prefix + "/" : "";
    const p = prefix.replace(/^\/+|\/+$/g, "") === "" ? root : root + safeRemotePath(prefix) + "/";
    let marker = "";
    for (;;) {
      const query = `format=json&limit=10000&prefix=${encodeURIComponent(p)}${
        marker ? `&marker=${encodeURIComponent(marker)}` : ""
      }`;
      const res = await this.request({
        method: "GET",
        container: this.s.container,
        query,
        signal: options.signal,
        action: "list",
        path: prefix || "/",
      });
      if (res.status === 404) {
        await res.body?.cancel();
        return;
      }
      if (!res.ok) throw await this.httpError(res, "list", prefix || "/");
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
    if (this.cdnBase) return;
    this.cdnResolving ??= (async () => {
      const session = await this.sessionFor();
      if (!session.cdnUrl) {
        throw this.fail(
          "look up the CDN URI of",
          this.s.container,
          "cdn is on but the service catalog has no CDN endpoint (rax:object-cdn); set url instead",
          "server",
        );
      }
      const cdnUrl = (s: SwiftSession) => `${s.cdnUrl}/${encodeURIComponent(this.s.container)}`;
      const common = {
        signal,
        action: "look up the CDN URI of",
        path: this.s.container,
        url: cdnUrl,
      };
      let res = await this.request({ method: "HEAD", ...common });
      await res.body?.cancel();
      if (
        res.status === 404 || (res.ok && !/^true$/i.test(res.headers.get("x-cdn-enabled") ?? ""))
      ) {
        const put = await this.request({
          method: "PUT",
          ...common,
          headers: { "X-Cdn-Enabled": "True" },
        });
        if (!put.ok) throw await this.httpError(put, "enable the CDN of", this.s.container);
        await put.body?.cancel();
        this.ctx.log.info(`Enabled the CDN of container "${this.s.container}"`);
        res = await this.request({ method: "HEAD", ...common });
        await res.body?.cancel();
      }
      if (!res.ok) throw await this.httpError(res, "look up the CDN URI of", this.s.container);
      const uri = res.headers.get(this.s.cdnSsl ? "x-cdn-ssl-uri" : "x-cdn-uri") ??
        res.headers.get("x-cdn-uri");
      if (!uri) {
        throw this.fail(
          "look up the CDN URI of",
          this.s.container,
          "the CDN answer has no X-Cdn-Uri",
          "server",
        );
      }
      this.cdnBase = uri.replace(/\/+$/, "");
    })();
    try {
      await this.cdnResolving;
    } finally {
      this.cdnResolving = undefined;
    }
  }

  /**
   * The public URL: `url` + name when set; else the container's CDN URI
   * (`cdn`); else the object's storage URL (for public-read containers).
   * The last two are known after the first call to the server.
   */
  url(remotePath: string): string {
    const name = this.name(safeRemotePath(remotePath));
    if (this.s.url) return joinUrl(this.s.url, name);
    if (this.s.cdn) {
      if (!this.cdnBase) {
        throw new ClassifiedError(
          `Cannot make the URL of "${remotePath}" on server "${this.ctx.serverName}": the CDN URI is not known yet`,
          "retry",
        );
      }
      return joinUrl(this.cdnBase, name);
    }
    if (!this.session) {
      throw new ClassifiedError(
        `Cannot make the URL of "${remotePath}" on server "${this.ctx.serverName}": not logged in yet (set url to avoid this)`,
        "retry",
      );
    }
    return joinUrl(`${this.session.storageUrl}/${encodeURIComponent(this.s.container)}`, name);
  }

  /** Closes pooled connections. Idempotent. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    this.closing.abort();
    this.client?.close();
    this.client = undefined;
    return Promise.resolve();
  }
}
