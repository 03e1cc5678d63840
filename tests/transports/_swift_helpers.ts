/**
 * Independent routes to what the Swift test server stores, for the s3, cf
 * and cloudfiles tests: the Swift API with a tempauth token (fetch, no code
 * of ours) and Debian's rclone.
 *
 * @module
 */
import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { logger } from "../../src/log.ts";
import { encodePath } from "../../src/transports/paths.ts";
import type { TransportContext } from "../../src/transports/transport.ts";
import type { SwiftInfo } from "../_servers.ts";

/** A transport context for tests. */
export function testContext(
  serverName: string,
  overrides: Partial<TransportContext> = {},
): TransportContext {
  return {
    serverName,
    log: logger(`test:${serverName}`),
    maxConnections: 8,
    timeoutMs: 15_000,
    sourceRoots: [],
    stateDir: path.join(os.tmpdir(), `fc-state-${serverName}`),
    ...overrides,
  };
}

/** A unique, valid bucket or container name. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${crypto.randomUUID().slice(0, 8)}`;
}

/** Writes bytes to a new temp file and returns its path. */
export async function tempFile(
  dir: string,
  data: Uint8Array | string,
  name?: string,
): Promise<string> {
  const p = path.join(dir, name ?? crypto.randomUUID());
  await fs.writeFile(p, typeof data === "string" ? new TextEncoder().encode(data) : data);
  return p;
}

/** Random bytes (crypto.getRandomValues fills at most 64 KiB at a time). */
export function randomBytes(size: number): Uint8Array {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) {
    crypto.getRandomValues(data.subarray(i, Math.min(size, i + 65536)));
  }
  return data;
}

/** MD5 (hex) of bytes, computed with node:crypto. */
export async function md5Of(data: Uint8Array): Promise<string> {
  const { createHash } = await import("node:crypto");
  return createHash("md5").update(data).digest("hex");
}

/** A tempauth token, straight from the Swift API. */
export async function swiftToken(info: SwiftInfo): Promise<string> {
  const res = await fetch(info.authUrl, {
    headers: { "X-Auth-User": info.user, "X-Auth-Key": info.key },
  });
  await res.body?.cancel();
  const token = res.headers.get("x-auth-token");
  if (!res.ok || !token) throw new Error(`Tempauth login failed: HTTP ${res.status}`);
  return token;
}

/** One Swift API call with a token; the container and name are percent-encoded here. */
export async function swiftFetch(
  info: SwiftInfo,
  token: string,
  method: string,
  container: string,
  name?: string,
  query = "",
): Promise<Response> {
  const url = `${info.storageUrl}/${encodeURIComponent(container)}${
    name === undefined ? "" : "/" + encodePath(name)
  }${query ? "?" + query : ""}`;
  return await fetch(url, { method, headers: { "X-Auth-Token": token } });
}

/** Reads an object through the Swift API; null when it does not exist. */
export async function swiftRead(
  info: SwiftInfo,
  token: string,
  container: string,
  name: string,
): Promise<Uint8Array | null> {
  const res = await swiftFetch(info, token, "GET", container, name);
  if (res.status === 404) {
    await res.body?.cancel();
    return null;
  }
  if (!res.ok) throw new Error(`GET ${container}/${name}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

/** Content-Type and Content-Encoding of a stored object, through the Swift API. */
export async function swiftHeaders(
  info: SwiftInfo,
  token: string,
  container: string,
  name: string,
): Promise<{ contentType: string | null; contentEncoding: string | null }> {
  const res = await swiftFetch(info, token, "HEAD", container, name);
  await res.body?.cancel();
  if (!res.ok) throw new Error(`HEAD ${container}/${name}: HTTP ${res.status}`);
  return {
    contentType: res.headers.get("content-type"),
    contentEncoding: res.headers.get("content-encoding"),
  };
}

/** The names in a container (JSON listing, first 10,000). */
export async function swiftList(
  info: SwiftInfo,
  token: string,
  container: string,
  prefix = "",
): Promise<string[]> {
  const res = await swiftFetch(
    info,
    token,
    "GET",
    container,
    undefined,
    `format=json&prefix=${encodeURIComponent(prefix)}`,
  );
  if (res.status === 404) {
    await res.body?.cancel();
    return [];
  }
  return ((await res.json()) as { name: string }[]).map((o) => o.name);
}

/** Environment for rclone without the machine's AWS_CA_BUNDLE (rclone's S3 client refuses it). */
function rcloneEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {
    ...Deno.env.toObject(),
    RCLONE_CONFIG: "/dev/null",
    ...extra,
  };
  delete env.AWS_CA_BUNDLE;
  return env;
}

/** Runs rclone; returns stdout, throws with stderr on failure. */
async function rclone(args: string[], env: Record<string, string>): Promise<Uint8Array> {
  const out = await new Deno.Command("rclone", {
    args,
    env: rcloneEnv(env),
    clearEnv: true,
    stdin: "null",
  }).output();
  if (out.code !== 0) {
    throw new Error(
      `rclone ${args.join(" ")} exited with ${out.code}: ${
        new TextDecoder().decode(out.stderr).trim()
      }`,
    );
  }
  return out.stdout;
}

/** rclone against the S3 API (`:s3:` on-the-fly remote, provider Other, path style). */
export function rcloneS3(info: SwiftInfo, args: string[]): Promise<Uint8Array> {
  return rclone(args, {
    RCLONE_S3_PROVIDER: "Other",
    RCLONE_S3_ACCESS_KEY_ID: info.accessKeyId,
    RCLONE_S3_SECRET_ACCESS_KEY: info.secretAccessKey,
    RCLONE_S3_ENDPOINT: info.s3Endpoint,
    RCLONE_S3_REGION: info.region,
    RCLONE_S3_FORCE_PATH_STYLE: "true",
  });
}

/** rclone against the Swift API (`:swift:` on-the-fly remote, tempauth). */
export function rcloneSwift(info: SwiftInfo, args: string[]): Promise<Uint8Array> {
  return rclone(args, {
    RCLONE_SWIFT_AUTH: info.authUrl,
    RCLONE_SWIFT_USER: info.user,
    RCLONE_SWIFT_KEY: info.key,
  });
}

/** `rclone md5sum` of a remote folder as a map of name to MD5 ("" when rclone has none). */
export async function rcloneMd5s(
  run: (args: string[]) => Promise<Uint8Array>,
  remote: string,
): Promise<Map<string, string>> {
  const text = new TextDecoder().decode(await run(["md5sum", remote]));
  const map = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^([0-9a-f]{32}| {32}) {2}(.+)$/.exec(line);
    if (m) map.set(m[2]!, m[1]!.trim());
  }
  return map;
}

/** Deletes an S3 bucket and everything in it; a missing bucket is fine. */
export async function s3Purge(info: SwiftInfo, bucket: string): Promise<void> {
  await rcloneS3(info, ["purge", `:s3:${bucket}`]).catch(() => {});
}
