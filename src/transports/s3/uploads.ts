/**
 * S3 uploads: one verified PUT, or a multipart upload with every part's
 * MD5 checked.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type * as fs from "node:fs";
import type * as fsp from "node:fs/promises";
import { ClassifiedError, classify, errorMessage, SourceChanged } from "../../errors.ts";
import type { PutOptions, PutResult } from "../transport.ts";
import {
  callDeadline,
  hexToBase64,
  md5Hex,
  MiB,
  readExactly,
  SMALL_FILE,
  unquoteEtag,
} from "../_common.ts";
import { formatBytes } from "../../util/format.ts";
import { md5File } from "../../util/hash.ts";
import { openRegular } from "../../util/regular_file.ts";
import { mapLimit } from "../../util/pool.ts";
import { crc32Base64, type LeanObjectOutput, putOutput } from "../_s3_lean.ts";
import { S3Calls } from "./client.ts";
import { etagNotMd5, MAX_PARTS, multipartEtag, s3Error } from "./support.ts";

/** The uploads of {@linkcode S3Calls}. */
export class S3Uploads extends S3Calls {
  protected async putSingle(
    localPath: string,
    rel: string,
    options: PutOptions,
  ): Promise<PutResult> {
    const describe = () => `Cannot upload "${rel}" to server "${this.ctx.serverName}"`;
    let body: Uint8Array | fs.ReadStream;
    let md5: string;
    let sig: AbortSignal | undefined;
    let deadline: ReturnType<typeof callDeadline> | undefined;
    try {
      if (options.size <= SMALL_FILE) {
        const data = await readExactly(localPath, options.size, describe);
        md5 = md5Hex(data);
        body = data;
        deadline = callDeadline(options.signal, this.ctx.timeoutMs);
        sig = deadline.signal;
      } else {
        md5 = options.md5 ?? await md5File(localPath, options.signal);
        // A node stream with a known length: web streams fail with the SDK under Deno.
        body = (await openRegular(localPath)).createReadStream({ start: 0, end: options.size - 1 });
        sig = options.signal;
      }
    } catch (err) {
      if (err instanceof ClassifiedError) throw err;
      throw new ClassifiedError(
        `${describe()}: ${errorMessage(err)}`,
        classify(err) === "server" ? "retry" : classify(err),
        {
          cause: err,
        },
      );
    }
    let out: LeanObjectOutput;
    const lean = body instanceof Uint8Array ? this.lean : undefined;
    try {
      if (lean) {
        const headers = this.objectHeaders(rel, options);
        headers["content-md5"] = hexToBase64(md5);
        if (this.s.checksum === "when_supported") {
          headers["x-amz-sdk-checksum-algorithm"] = "CRC32";
          headers["x-amz-checksum-crc32"] = crc32Base64(body as Uint8Array);
        }
        const res = await lean.send(
          "PUT",
          this.key(rel),
          headers,
          body as Uint8Array<ArrayBuffer>,
          sig,
        );
        out = putOutput(res.headers);
      } else {
        out = await this.sdk((m, c) =>
          c.send(
            new m.PutObjectCommand({
              ...this.objectParams(rel, options),
              Body: body,
              ContentLength: options.size,
              ContentMD5: hexToBase64(md5),
            }),
            { abortSignal: sig },
          )
        );
      }
    } catch (err) {
      const e = s3Error(
        err,
        this.what("upload", rel),
        options.signal,
        sig === options.signal ? undefined : sig,
      );
      throw await this.explain(e, err, rel, options.signal);
    } finally {
      deadline?.done();
      if (!(body instanceof Uint8Array)) body.destroy();
    }
    const etag = unquoteEtag(out.ETag);
    if (etag && etag.toLowerCase() !== md5 && !etagNotMd5(out)) {
      throw new ClassifiedError(
        `${describe()}: the server's ETag "${etag}" differs from the local MD5 "${md5}"`,
        "retry",
      );
    }
    return { size: options.size, ...(etag ? { etag } : {}), md5 };
  }

  protected async putMultipart(
    localPath: string,
    rel: string,
    options: PutOptions,
  ): Promise<PutResult> {
    const describe = () => `Cannot upload "${rel}" to server "${this.ctx.serverName}"`;
    const size = options.size;
    const { signal } = options;
    let fh: fsp.FileHandle;
    let md5: string;
    let before: fs.Stats;
    try {
      fh = await openRegular(localPath);
      before = await fh.stat();
      md5 = options.md5 ?? await md5File(localPath, signal);
    } catch (err) {
      throw new ClassifiedError(
        `${describe()}: ${errorMessage(err)}`,
        classify(err) === "server" ? "retry" : classify(err),
        {
          cause: err,
        },
      );
    }
    // Grow the part size (in whole MiB) when the file would need more than 10,000 parts.
    const partSize = Math.max(this.s.partSize, Math.ceil(size / MAX_PARTS / MiB) * MiB);
    const count = Math.ceil(size / partSize);
    const params = this.objectParams(rel, options);
    let uploadId: string | undefined;
    try {
      const created = await this.call(
        "upload",
        rel,
        signal,
        (abortSignal) =>
          // rclone's convention (base64 MD5 in `md5chksum`): `rclone check` verifies our large files.
          this.sdk((m, c) =>
            c.send(
              new m.CreateMultipartUploadCommand({
                ...params,
                Metadata: { md5chksum: hexToBase64(md5) },
              }),
              { abortSignal },
            )
          ),
      );
      uploadId = created.UploadId;
      if (!uploadId) {
        throw new ClassifiedError(`${describe()}: the server returned no upload ID`, "retry");
      }
      let encrypted = etagNotMd5(created);
      const partMd5s: string[] = new Array(count);
      const parts = await mapLimit(
        Array.from({ length: count }, (_, i) => i),
        this.s.partConcurrency,
        async (i) => {
          signal.throwIfAborted();
          const start = i * partSize;
          const len = Math.min(partSize, size - start);
          const buf = Buffer.allocUnsafe(len);
          let got = 0;
          while (got < len) {
            const { bytesRead } = await fh.read(buf, got, len - got, start + got);
            if (bytesRead === 0) break;
            got += bytesRead;
          }
          if (got !== len) {
            throw new ClassifiedError(
              `${describe()}: the local file shrank while uploading`,
              "retry",
            );
          }
          const partMd5 = md5Hex(buf);
          partMd5s[i] = partMd5;
          let out;
          try {
            out = await this.sdk((m, c) =>
              c.send(
                new m.UploadPartCommand({
                  Bucket: params.Bucket,
                  Key: params.Key,
                  UploadId: uploadId,
                  PartNumber: i + 1,
                  Body: buf,
                  ContentLength: len,
                  ContentMD5: hexToBase64(partMd5),
                }),
                { abortSignal: signal },
              )
            );
          } catch (err) {
            const e = await this.explain(
              s3Error(err, this.what("upload", rel), signal),
              err,
              rel,
              signal,
            );
            throw new ClassifiedError(`${e.message} (part ${i + 1} of ${count})`, e.kind, {
              cause: e.cause,
            });
          }
          encrypted ||= etagNotMd5(out);
          const etag = unquoteEtag(out.ETag);
          if (!etag) throw new ClassifiedError(`${describe()}: no ETag for part ${i + 1}`, "retry");
          if (!encrypted && etag.toLowerCase() !== partMd5) {
            throw new ClassifiedError(
              `${describe()}: the server's ETag "${etag}" of part ${
                i + 1
              } differs from its MD5 "${partMd5}"`,
              "retry",
            );
          }
          return { PartNumber: i + 1, ETag: out.ETag! };
        },
      );
      const after = await fh.stat();
      if (after.size !== before.size || after.mtimeMs !== before.mtimeMs || after.size !== size) {
        throw new SourceChanged(`${describe()}: the local file changed while uploading`);
      }
      const done = await this.call(
        "upload",
        rel,
        signal,
        (abortSignal) =>
          this.sdk((m, c) =>
            c.send(
              new m.CompleteMultipartUploadCommand({
                Bucket: params.Bucket,
                Key: params.Key,
                UploadId: uploadId,
                MultipartUpload: { Parts: parts },
              }),
              { abortSignal },
            )
          ),
      );
      uploadId = undefined;
      const etag = unquoteEtag(done.ETag);
      const expected = multipartEtag(partMd5s);
      if (etag && !encrypted && !etagNotMd5(done) && etag.toLowerCase() !== expected) {
        throw new ClassifiedError(
          `${describe()}: the server's ETag "${etag}" differs from the expected multipart ETag "${expected}"`,
          "retry",
        );
      }
      const head = await this.call(
        "upload",
        rel,
        signal,
        (abortSignal) =>
          this.sdk((m, c) =>
            c.send(new m.HeadObjectCommand({ Bucket: params.Bucket, Key: params.Key }), {
              abortSignal,
            })
          ),
      );
      if (head.ContentLength !== size) {
        throw new ClassifiedError(
          `${describe()}: the server stores ${head.ContentLength} bytes, expected ${size} (${
            formatBytes(size)
          })`,
          "retry",
        );
      }
      return { size, ...(etag ? { etag } : {}), md5 };
    } catch (err) {
      if (uploadId) {
        // Without this, the parts stay (and are billed) until a lifecycle rule removes them.
        const id = uploadId;
        await this.sdk((m, c) =>
          c.send(
            new m.AbortMultipartUploadCommand({
              Bucket: params.Bucket,
              Key: params.Key,
              UploadId: id,
            }),
            { abortSignal: AbortSignal.timeout(this.ctx.timeoutMs) },
          )
        ).catch((e) =>
          this.ctx.log.warn(`Cannot abort the multipart upload of "${rel}": ${errorMessage(e)}`)
        );
      }
      throw s3Error(err, this.what("upload", rel), signal);
    } finally {
      await fh.close().catch(() => {});
    }
  }
}
