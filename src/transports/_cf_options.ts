/**
 * The option schema and checks of the `cf` transport: the S3 settings
 * (without the URL ones) plus the distribution's. Kept apart from the
 * transport so that registering it stays cheap.
 *
 * @module
 */
import type { OptionSpec, OptionValues } from "../options.ts";
import { S3_OPTIONS, validateS3 } from "./_s3_options.ts";

/** The settings `cf` adds to those of `s3` (read by `_cf_impl.ts`). */
export const CF_EXTRA_OPTIONS = [
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
] as const satisfies readonly OptionSpec[];

/** Every setting of the `cf` transport. */
export const CF_OPTIONS: readonly OptionSpec[] = [
  ...S3_OPTIONS.filter((o) => o.name !== "url" && o.name !== "url_style"),
  ...CF_EXTRA_OPTIONS,
];

/** Cross-setting checks of the `cf` options (no network). */
export function validateCf(v: OptionValues): string[] {
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
