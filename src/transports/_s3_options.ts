/**
 * The option schema and checks of the S3 settings, shared by the `s3` and
 * `cf` transports. Kept apart from `s3/transport.ts` (the client, which loads
 * the AWS SDK) so that registering those transports stays cheap.
 *
 * @module
 */
import type { OptionSpec, OptionValues } from "../options.ts";
import { checkSize, MiB } from "./_common.ts";

/** The original File Conveyor's far-future headers (`headers` = `original`). */
export const ORIGINAL_CACHE_CONTROL = "max-age=315360000";
/** The original File Conveyor's fixed `Expires` date. */
export const ORIGINAL_EXPIRES = "Tue, 20 Jan 2037 03:00:00 GMT";

/** S3's smallest part (except the last one). */
export const MIN_PART = 5 * MiB;
/** S3's largest part. */
const MAX_PART = 5 * 1024 * MiB;

const CANNED_ACLS = [
  "private",
  "public-read",
  "public-read-write",
  "authenticated-read",
  "aws-exec-read",
  "bucket-owner-read",
  "bucket-owner-full-control",
] as const;

/** Every setting of the `s3` transport (the `cf` transport adds its own). */
export const S3_OPTIONS = [
  {
    name: "access_key_id",
    help:
      "Access key ID; leave out (with secret_access_key) to use the standard AWS credential chain",
  },
  {
    name: "secret_access_key",
    secret: true,
    help: "Secret access key belonging to access_key_id",
  },
  {
    name: "session_token",
    secret: true,
    help: "Session token for temporary credentials (with access_key_id and secret_access_key)",
  },
  { name: "bucket_name", required: true, help: "Bucket to upload to" },
  {
    name: "bucket_prefix",
    help:
      "Prepended to bucket_name to form the bucket's name (the original's meaning; use path for a key prefix)",
  },
  {
    name: "path",
    help: "Key prefix inside the bucket, e.g. static (no leading slash)",
  },
  { name: "region", default: "us-east-1", help: "Region of the bucket, e.g. eu-west-1" },
  {
    name: "endpoint",
    type: "url",
    help: "Endpoint of an S3-compatible service, e.g. https://s3.example.com (default: AWS)",
  },
  {
    name: "force_path_style",
    type: "boolean",
    default: "false",
    help:
      "Address the bucket as endpoint/bucket instead of bucket.endpoint (most S3-compatible services need true)",
  },
  {
    name: "checksum",
    type: "enum",
    values: ["when_supported", "when_required"],
    default: "when_supported",
    help:
      "Extra CRC32 checksums (when_supported); S3-compatible servers such as Swift need when_required",
  },
  {
    name: "acl",
    type: "enum",
    values: CANNED_ACLS,
    help:
      "Canned ACL for every object, e.g. public-read (default: none; buckets created since 2023 refuse ACLs)",
  },
  {
    name: "headers",
    type: "enum",
    values: ["none", "original"],
    default: "none",
    help:
      `"original" adds the original's far-future Cache-Control (10 years) and Expires (2037) headers`,
  },
  {
    name: "cache_control",
    help: "Cache-Control header for every object, e.g. public, max-age=31536000",
  },
  {
    name: "expires",
    help: "Expires header for every object, an HTTP date such as Tue, 20 Jan 2037 03:00:00 GMT",
  },
  {
    name: "storage_class",
    help: "Storage class, e.g. STANDARD, STANDARD_IA, INTELLIGENT_TIERING (default: the bucket's)",
  },
  {
    name: "url",
    type: "url",
    help:
      "Public base URL of the bucket root (e.g. a CDN domain); keys, path included, are appended",
  },
  {
    name: "url_style",
    type: "enum",
    values: ["virtual", "path"],
    help:
      "Public URL form without url: virtual (bucket.s3.region.amazonaws.com/key) or path (default: path when force_path_style or the bucket has dots)",
  },
  {
    name: "multipart_threshold",
    default: "64M",
    help: "Files of this size or more are uploaded in parts, e.g. 64M",
  },
  {
    name: "part_size",
    default: "8M",
    help: "Size of one part of a multipart upload (at least 5M)",
  },
  {
    name: "part_concurrency",
    type: "integer",
    min: 1,
    max: 64,
    default: "4",
    help: "Parts of one file uploaded at once; memory use is at most part_size times this per file",
  },
  {
    name: "create_bucket",
    type: "boolean",
    default: "false",
    help: "Create the bucket when it does not exist (the original created it)",
  },
] as const satisfies readonly OptionSpec[];

/** Cross-setting checks of the S3 options (no network). */
export function validateS3(v: OptionValues): string[] {
  const problems: string[] = [];
  const key = (v.access_key_id ?? "").trim();
  const secret = (v.secret_access_key ?? "").trim();
  if ((key === "") !== (secret === "")) {
    problems.push(
      'Settings "access_key_id" and "secret_access_key" go together: set both, or neither to use the AWS credential chain',
    );
  }
  if ((v.session_token ?? "").trim() !== "" && key === "") {
    problems.push('Setting "session_token" needs "access_key_id" and "secret_access_key"');
  }
  const bucket = (v.bucket_prefix ?? "") + (v.bucket_name ?? "");
  if (bucket !== "" && !/^[a-z0-9][a-z0-9.\-_]{2,254}$/i.test(bucket)) {
    problems.push(`Bucket name "${bucket}" is not a valid bucket name`);
  }
  for (const name of ["multipart_threshold", "part_size"] as const) {
    const p = checkSize(name, v[name], name === "part_size" ? MIN_PART : 0, MAX_PART);
    if (p) problems.push(p);
  }
  if (v.expires && Number.isNaN(Date.parse(v.expires))) {
    problems.push(
      `Setting "expires" must be an HTTP date such as "${ORIGINAL_EXPIRES}", not "${v.expires}"`,
    );
  }
  if ((v.path ?? "").split("/").some((s) => s === "..")) {
    problems.push(`Setting "path" must not contain "..": "${v.path}"`);
  }
  return problems;
}
