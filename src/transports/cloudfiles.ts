/**
 * `cloudfiles`: Rackspace Cloud Files or any OpenStack Swift, spoken with
 * `fetch` (no SDK). Logs in with auth v1 (tempauth), v2 (Keystone with
 * Rackspace API keys or passwords) or v3 (Keystone passwords); the token is
 * cached and renewed on expiry or on a 401. Every PUT carries the file's
 * MD5 as `ETag`, so the server refuses corrupted uploads (422); files from
 * `segment_threshold` up become Static Large Objects in
 * `<container>_segments`.
 *
 * @module
 */
// Only the option schema and validation live here, so that registering the
// transport (every start of the CLI) stays cheap: the transport itself is in
// cloudfiles/transport.ts, imported on first create().
import type { OptionSpec, OptionValues } from "../options.ts";
import { checkedSettings, registerTransport, type TransportDef } from "./transport.ts";
import { checkSize, MiB } from "./_common.ts";
import { RACKSPACE_AUTH_V1, RACKSPACE_AUTH_V2 } from "./_swift_auth.ts";
import { loadModule } from "../lazy.ts";

/** Swift's default largest single object. */
export const MAX_OBJECT: number = 5 * 1024 * MiB;

/** Every setting of the `cloudfiles` transport. */
export const CLOUDFILES_OPTIONS = [
  { name: "username", required: true, help: "User name (auth v1: account:user for tempauth)" },
  { name: "api_key", secret: true, help: "API key (Rackspace; auth v1 key); or use password" },
  {
    name: "password",
    secret: true,
    help: "Password for Keystone password auth (v2 without api_key, v3)",
  },
  { name: "container", required: true, help: "Container to upload to (created when missing)" },
  {
    name: "auth_version",
    type: "enum",
    values: ["1", "2", "3"],
    default: "2",
    help:
      "Identity API: 1 (tempauth, X-Auth-User/Key), 2 (Keystone v2, Rackspace's default) or 3 (Keystone v3)",
  },
  {
    name: "auth_url",
    type: "url",
    help:
      `Identity endpoint (default for v2: ${RACKSPACE_AUTH_V2}; for v1: ${RACKSPACE_AUTH_V1}; v3 needs one)`,
  },
  {
    name: "region",
    help:
      "Region whose object store to use, e.g. DFW or RegionOne (default: the account's default or the first)",
  },
  { name: "tenant_id", help: "Tenant (v2) or project (v3) ID to scope the token to" },
  { name: "tenant_name", help: "Tenant (v2) or project (v3) name to scope the token to" },
  { name: "user_domain", default: "Default", help: "Domain of the user (v3)" },
  {
    name: "project_domain",
    default: "Default",
    help: "Domain of the project named by tenant_name (v3)",
  },
  {
    name: "endpoint_type",
    type: "enum",
    values: ["public", "internal", "admin"],
    default: "public",
    help:
      "Which catalog URL to use: public, or internal (Rackspace ServiceNet, free bandwidth inside a data centre)",
  },
  { name: "path", help: "Object name prefix inside the container, e.g. static" },
  {
    name: "url",
    type: "url",
    help:
      "Public base URL of the container root (e.g. a CDN domain); names, path included, are appended",
  },
  {
    name: "cdn",
    type: "boolean",
    default: "false",
    help: "Use the container's CDN URI (Rackspace CDN; enabled on the container when it is not)",
  },
  {
    name: "cdn_ssl",
    type: "boolean",
    default: "true",
    help: "Use the CDN's https URI rather than its http one",
  },
  {
    name: "cache_control",
    help: "Cache-Control header for every object (if the cluster stores it)",
  },
  {
    name: "segment_threshold",
    default: "1G",
    help: "Files of this size or more become Static Large Objects (at most 5G)",
  },
  { name: "segment_size", default: "128M", help: "Size of one segment of a Static Large Object" },
  {
    name: "segment_concurrency",
    type: "integer",
    min: 1,
    max: 32,
    default: "2",
    help: "Segments of one file uploaded at once",
  },
  { name: "segment_container", help: "Container for segments (default: <container>_segments)" },
  {
    name: "create_container",
    type: "boolean",
    default: "true",
    help: "Create the container (and the segment container) when missing",
  },
] as const satisfies readonly OptionSpec[];

function validate(v: OptionValues): string[] {
  const problems: string[] = [];
  const version = (v.auth_version ?? "2").trim();
  const has = (name: string) => (v[name] ?? "").trim() !== "";
  if (!has("api_key") && !has("password")) problems.push('Set "api_key" or "password"');
  if (version === "3" && !has("auth_url")) {
    problems.push('Auth version 3 needs "auth_url" (e.g. https://keystone.example.com/v3)');
  }
  if (version === "3" && !has("password") && has("api_key")) {
    problems.push('Auth version 3 logs in with "password", not "api_key"');
  }
  const t = checkSize("segment_threshold", v.segment_threshold, 1, MAX_OBJECT);
  if (t) problems.push(t);
  const s = checkSize("segment_size", v.segment_size, 1, MAX_OBJECT);
  if (s) problems.push(s);
  const c = (v.container ?? "").trim();
  if (c.includes("/")) problems.push(`Setting "container" must not contain "/": "${c}"`);
  if ((v.path ?? "").split("/").some((x) => x === "..")) {
    problems.push(`Setting "path" must not contain "..": "${v.path}"`);
  }
  return problems;
}

const CLOUDFILES: TransportDef = {
  name: "cloudfiles",
  aliases: ["mosso", "swift"],
  summary:
    "Rackspace Cloud Files or OpenStack Swift (auth v1/v2/v3); MD5-verified uploads, large objects as SLO",
  options: CLOUDFILES_OPTIONS,
  validate,
  storedMd5: true,
  async create(settings, ctx) {
    const values = checkedSettings(CLOUDFILES, settings, ctx.serverName);
    const { CloudFiles } = await loadModule<typeof import("./cloudfiles/transport.ts")>(
      "transports/cloudfiles/transport.ts",
    );
    return new CloudFiles(values, ctx);
  },
};

registerTransport(CLOUDFILES);
