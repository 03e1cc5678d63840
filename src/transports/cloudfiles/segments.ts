/**
 * Large files as Static Large Objects: segments uploaded in parallel, then
 * the manifest; the segments of a replaced object.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { ClassifiedError, classify, errorMessage } from "../../errors.ts";
import { encodePath } from "../paths.ts";
import type { PutOptions, PutResult } from "../transport.ts";
import { md5Hex, unquoteEtag } from "../_common.ts";
import { contentTypeFor } from "../_content_type.ts";
import { md5File } from "../../util/hash.ts";
import { mapLimit } from "../../util/pool.ts";
import { fileStream, MAX_SEGMENTS, type StreamState } from "./support.ts";
import { SwiftClient } from "./client.ts";

/** The segmented (SLO) uploads of {@linkcode SwiftClient}. */
export class SegmentedUploads extends SwiftClient {
  /** The segment names of the SLO stored at `name`, or [] when it is not one. */
  async #oldSegments(name: string, rel: string, signal: AbortSignal): Promise<string[]> {
    const res = await this.request({
      method: "GET",
      container: this.s.container,
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
    if (!res.ok) throw await this.httpError(res, "upload", rel);
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
      const res = await this.request({
        method: "DELETE",
        container,
        name,
        signal,
        action: "delete segment",
        path: p,
      });
      await res.body?.cancel();
    }).catch((err) => this.ctx.log.warn(`Cannot delete old segments: ${errorMessage(err)}`));
  }

  /** Static Large Object: segments (each checked by MD5), then the manifest, then cleanup of replaced segments. */
  protected async putSlo(localPath: string, rel: string, options: PutOptions): Promise<PutResult> {
    const { signal, size } = options;
    const name = this.name(rel);
    let md5: string;
    try {
      md5 = options.md5 ?? await md5File(localPath, signal);
    } catch (err) {
      throw this.fail(
        "upload",
        rel,
        errorMessage(err),
        classify(err) === "server" ? "retry" : classify(err),
        err,
      );
    }
    const old = await this.#oldSegments(name, rel, signal);
    const segSize = Math.max(this.s.segmentSize, Math.ceil(size / MAX_SEGMENTS));
    const count = Math.ceil(size / segSize);
    // A unique folder per upload: a concurrent or failed upload never touches the segments in use.
    const folder = `${name}/slo/${Date.now()}-${
      crypto.randomUUID().slice(0, 8)
    }/${size}/${segSize}`;
    const uploaded: string[] = [];
    const segContainer = this.s.segContainer;
    // Once per run: segment PUTs into a missing container would each be refused after sending data.
    await this.createContainer(segContainer, signal);
    try {
      const segments = await mapLimit(
        Array.from({ length: count }, (_, i) => i),
        this.s.segmentConcurrency,
        async (i) => {
          const segName = `${folder}/${String(i).padStart(8, "0")}`;
          const start = i * segSize;
          const len = Math.min(segSize, size - start);
          for (let attempt = 1;; attempt++) {
            let hash = createHash("md5");
            const stream: StreamState = { shrank: false };
            try {
              const res = await this.putObject({
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
                throw this.fail(
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
              this.ctx.log.warn(`${e.message}; retrying the segment`);
            }
          }
        },
      );
      const manifestEtag = md5Hex(new TextEncoder().encode(segments.map((s) => s.etag).join("")));
      const res = await this.putObject({
        method: "PUT",
        container: this.s.container,
        name,
        query: "multipart-manifest=put",
        headers: {
          "Content-Type": contentTypeFor(rel, options),
          ETag: manifestEtag,
          "X-Object-Meta-Md5": md5,
          ...(options.contentEncoding ? { "Content-Encoding": options.contentEncoding } : {}),
          ...(this.s.cacheControl ? { "Cache-Control": this.s.cacheControl } : {}),
        },
        body: () => JSON.stringify(segments),
        signal,
        action: "upload",
        path: rel,
      });
      await res.body?.cancel();
      uploaded.length = 0;
      const head = await this.head(name, rel, signal);
      if (!head || head.size !== size) {
        throw this.fail(
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
        await this.#deleteSegments(uploaded, AbortSignal.timeout(this.ctx.timeoutMs));
      }
      throw err;
    }
  }
}
