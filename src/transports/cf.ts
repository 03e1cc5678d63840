/**
 * `cf`: Amazon CloudFront in front of an S3 bucket. Uploads go to S3 exactly
 * like the `s3` transport; URLs use the distribution's domain. With
 * `distribution_id` set, overwritten and deleted files are invalidated in
 * batches (the original never invalidated and relied on unique names).
 *
 * @module
 */
import type { OptionSpec, OptionValues } from "../options.ts";
import { registerTransport } from "./transport.ts";
// The transport (and with it the AWS SDK) is loaded on the first create() only.
import { S3_OPTIONS, validateS3 } from "./_s3_options.ts";

const CF_OPTIONS: readonly OptionSpec[] = [
  ...S3_OPTIONS.filter((o) => o.name !== "url" && o.name !== "url_style"),
  {
    name: "distro_domain_name",
    required: true,
    help:
      "Domain of the distribution, e.g. d111111abcdef8.cloudfront.net or cdn.example.com (URLs are https://domain/key)",
  },
  {
    name: "distribution_id",
    help:
      "Distribution ID, e.g. EDFDVBD6EXAMPLE; when set, overwritten and deleted files are invalidated",
  },
  {
    name: "invalidation_delay",
    type: "number",
    min: 0,
    max: 3600,
    default: "5",
    help: "Seconds to collect changes before one invalidation request is sent",
  },
  {
    name: "invalidate_new",
    type: "boolean",
    default: "false",
    help: "Also invalidate files uploaded for the first time (clears cached 404 answers)",
  },
  {
    name: "cloudfront_endpoint",
    type: "url",
    help: "CloudFront API endpoint (for tests and proxies; default AWS)",
  },
];

function validateCf(v: OptionValues): string[] {
  const problems = validateS3(v);
  const domain = (v.distro_domain_name ?? "").trim();
  if (domain !== "" && !/^(https?:\/\/)?[a-z0-9.-]+(:\d+)?(\/.*)?$/i.test(domain)) {
    problems.push(
      `Setting "distro_domain_name" must be a domain such as d111111abcdef8.cloudfront.net, not "${domain}"`,
    );
  }
  const id = (v.distribution_id ?? "").trim();
  if (id !== "" && !/^[A-Z0-9]+$/i.test(id)) {
    problems.push(`Setting "distribution_id" must look like EDFDVBD6EXAMPLE, not "${id}"`);
  }
  return problems;
}

registerTransport({
  name: "cf",
  aliases: ["cloudfront"],
  summary: "Amazon CloudFront over an S3 bucket; batched invalidation of changed and deleted files",
  options: CF_OPTIONS,
  validate: validateCf,
  async create(settings, ctx) {
    const { CloudFront } = await import("./_cf_impl.ts");
    return new CloudFront(settings, ctx);
  },
});
