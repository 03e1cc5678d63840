/**
 * `cf`: Amazon CloudFront in front of an S3 bucket. Uploads go to S3 exactly
 * like the `s3` transport; URLs use the distribution's domain. With
 * `distribution_id` set, overwritten and deleted files are invalidated in
 * batches (the original never invalidated and relied on unique names).
 *
 * @module
 */
import { checkedSettings, registerTransport, type TransportDef } from "./transport.ts";
// The transport is loaded on the first create() only, and the AWS SDKs on first need.
import { CF_OPTIONS, validateCf } from "./_cf_options.ts";
import { loadModule } from "../lazy.ts";

const CF: TransportDef = {
  name: "cf",
  aliases: ["cloudfront"],
  summary: "Amazon CloudFront over an S3 bucket; batched invalidation of changed and deleted files",
  options: CF_OPTIONS,
  validate: validateCf,
  storedMd5: true,
  async create(settings, ctx) {
    const values = checkedSettings(CF, settings, ctx.serverName);
    const { CloudFront } = await loadModule<typeof import("./_cf_impl.ts")>(
      "transports/_cf_impl.ts",
    );
    return new CloudFront(values, ctx);
  },
};

registerTransport(CF);
