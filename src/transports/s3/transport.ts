/**
 * The S3 client shared by the `s3` and `cf` transports: settings, error
 * classification, verified single-part and multipart
 * uploads, stat, list, server-side move. Calls are in `client.ts`, uploads
 * in `uploads.ts`, settings and errors in `support.ts`.
 *
 * @module
 */
import type { HeadObjectCommandOutput } from "@aws-sdk/client-s3";
import { ClassifiedError } from "../../errors.ts";
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
import { basename, isMd5, unquoteEtag } from "../_common.ts";
import { type LeanObjectOutput, objectOutput } from "../_s3_lean.ts";
import { S3Uploads } from "./uploads.ts";
import { base64ToHex, etagNotMd5, isNoSuchBucket, isNotFound, type SdkError } from "./support.ts";

export {
  ORIGINAL_CACHE_CONTROL,
  ORIGINAL_EXPIRES,
  S3_OPTIONS,
  validateS3,
} from "../_s3_options.ts";
export { s3Error, s3Settings, sdkLogger } from "./support.ts";

/**
 * One S3 bucket (AWS or S3-compatible). Connects on first use; pools up to
 * `maxConnections` keep-alive connections.
 */
export class S3Transport extends S3Uploads implements Transport, Stater, Lister, Mover {
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
        return options.size >= this.s.multipartThreshold && options.size > 0
          ? await this.putMultipart(localPath, rel, options)
          : await this.putSingle(localPath, rel, options);
      } catch (err) {
        const cause = (err as Error).cause ?? err;
        if (attempt === 0 && isNoSuchBucket(cause) && await this.ensureBucket(options.signal)) {
          continue;
        }
        throw err;
      }
    }
  }

  /** Deletes an object; a missing object is fine (S3 answers 204 either way). */
  async delete(remotePath: string, options: CallOptions): Promise<void> {
    const rel = safeRemotePath(remotePath);
    try {
      await this.call(
        "delete",
        rel,
        options.signal,
        async (abortSignal) => {
          const lean = this.lean;
          if (lean) await lean.send("DELETE", this.key(rel), {}, undefined, abortSignal);
          else {
            await this.sdk((m, c) =>
              c.send(new m.DeleteObjectCommand({ Bucket: this.s.bucket, Key: this.key(rel) }), {
                abortSignal,
              })
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
      out = await this.call(
        "stat",
        rel,
        options.signal,
        async (abortSignal) => {
          const lean = this.lean;
          if (lean) {
            return objectOutput(
              (await lean.send("HEAD", this.key(rel), {}, undefined, abortSignal)).headers,
            );
          }
          return await this.sdk((m, c) =>
            c.send(new m.HeadObjectCommand({ Bucket: this.s.bucket, Key: this.key(rel) }), {
              abortSignal,
            })
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
    const root = this.s.prefix ? this.s.prefix + "/" : "";
    const p = prefix.replace(/^\/+|\/+$/g, "") === "" ? root : root + safeRemotePath(prefix) + "/";
    let token: string | undefined;
    do {
      const out = await this.call(
        "list",
        prefix || "/",
        options.signal,
        (abortSignal) =>
          this.sdk((m, c) =>
            c.send(
              new m.ListObjectsV2Command({
                Bucket: this.s.bucket,
                Prefix: p,
                ...(token ? { ContinuationToken: token } : {}),
              }),
              { abortSignal },
            )
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
    const s = this.s;
    try {
      await this.call("move", src, options.signal, async (abortSignal) => {
        const lean = this.lean;
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
        await this.sdk((m, c) =>
          c.send(
            new m.CopyObjectCommand({
              Bucket: s.bucket,
              Key: this.key(dst),
              CopySource: `${s.bucket}/${encodePath(this.key(src))}`,
              MetadataDirective: "COPY",
              ...(s.acl ? { ACL: s.acl } : {}),
              ...(s.storageClass ? { StorageClass: s.storageClass } : {}),
            }),
            { abortSignal },
          )
        );
      });
    } catch (err) {
      const cause = (err as Error).cause as SdkError | undefined;
      if (
        cause?.name === "NoSuchKey" ||
        cause?.$metadata?.httpStatusCode === 404 && !isNoSuchBucket(cause)
      ) {
        throw new ClassifiedError(
          `Cannot move "${src}" on server "${this.ctx.serverName}": it does not exist`,
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
    const s = this.s;
    if (s.url) return joinUrl(s.url, key);
    const endpoint = s.endpoint ?? `https://s3.${s.region}.amazonaws.com`;
    if (s.urlStyle === "path") return joinUrl(`${endpoint}/${encodePath(s.bucket)}`, key);
    const u = new URL(endpoint);
    return joinUrl(`${u.protocol}//${s.bucket}.${u.host}${u.pathname.replace(/\/+$/, "")}`, key);
  }

  /** Closes the pooled connections. Idempotent. */
  close(): Promise<void> {
    this.closed = true;
    this.client?.destroy();
    this.agent?.destroy();
    this.leanClient?.close();
    this.leanClient = undefined;
    this.client = undefined;
    this.agent = undefined;
    return Promise.resolve();
  }
}
