/**
 * `s3`: Amazon S3 or any S3-compatible service (Swift's s3api, Ceph,
 * MinIO, R2, …). Every upload is verified: single PUTs send Content-MD5 and
 * compare the ETag; multipart uploads check each part's MD5, store the
 * file's MD5 in `x-amz-meta-md5chksum` (as rclone) and check the final size. URLs are plain,
 * unsigned and never expire.
 *
 * @module
 */
import { checkedSettings, registerTransport, type TransportDef } from "./transport.ts";
// The client is loaded on the first create() only, and the AWS SDK on the first call the
// lean path does not make.
import { S3_OPTIONS, validateS3 } from "./_s3_options.ts";
import { loadModule } from "../lazy.ts";

const S3: TransportDef = {
  name: "s3",
  summary: "Amazon S3 or an S3-compatible service; verified uploads, multipart for large files",
  options: S3_OPTIONS,
  validate: validateS3,
  // A small PUT costs the main thread about a millisecond, a pick of one job a tenth of that:
  // with four jobs per slot a pick serves several uploads (2,000 files: -5 % CPU, 3 rounds).
  pickPerSlot: 4,
  storedMd5: true,
  async create(settings, ctx) {
    const values = checkedSettings(S3, settings, ctx.serverName);
    const { S3Transport, s3Settings } = await loadModule<typeof import("./s3/transport.ts")>(
      "transports/s3/transport.ts",
    );
    return new S3Transport(s3Settings(values), ctx);
  },
};

registerTransport(S3);
