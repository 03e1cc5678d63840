/**
 * `s3`: Amazon S3 or any S3-compatible service (Swift's s3api, Ceph,
 * MinIO, R2, …). Every upload is verified: single PUTs send Content-MD5 and
 * compare the ETag; multipart uploads check each part's MD5, store the
 * file's MD5 in `x-amz-meta-md5chksum` (as rclone) and check the final size. URLs are plain,
 * unsigned and never expire.
 *
 * @module
 */
import { registerTransport } from "./transport.ts";
// The client (and with it the AWS SDK) is loaded on the first create() only.
import { S3_OPTIONS, validateS3 } from "./_s3_options.ts";

registerTransport({
  name: "s3",
  summary: "Amazon S3 or an S3-compatible service; verified uploads, multipart for large files",
  options: S3_OPTIONS,
  validate: validateS3,
  async create(settings, ctx) {
    const { S3Transport } = await import("./s3/transport.ts");
    return new S3Transport(settings, ctx);
  },
});
