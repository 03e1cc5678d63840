/**
 * Remote destinations for the fault tests: the shared SFTP (OpenSSH) and S3
 * (Swift s3api) test servers, each test in its own directory or bucket, and
 * Debian's rclone as the independent client that reads back what arrived.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { getTransportDef } from "../../src/transports/transport.ts";
import "../../src/transports/mod.ts";
import { type SftpInfo, startServer, type SwiftInfo } from "../_servers.ts";

/** Whether the CLI can use a transport yet (other engineers add them). */
export function hasTransport(name: string): boolean {
  return getTransportDef(name) !== undefined;
}

/** A remote destination under test. */
export interface Remote {
  /** Transport name (sftp, s3). */
  kind: string;
  /** `<server name="NAME" …>…</server>`. */
  serverXml(name: string, opts?: { port?: number; extra?: string }): string;
  /** The rclone remote of the destination root (`fcsftp:dir`, `fcs3:bucket`). */
  rcloneRoot: string;
  /** Environment that defines the rclone remote. */
  rcloneEnv: Record<string, string>;
  /** Port of the real server (for a proxy in front of it). */
  port: number;
  /** Secrets a run must never print. */
  secrets: string[];
  /** Removes the test's directory or bucket. */
  cleanup(): Promise<void>;
}

async function rclone(
  env: Record<string, string>,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command("rclone", {
    args: ["--config", "/dev/null", ...args],
    // A clean environment: AWS_CA_BUNDLE and friends from the machine break rclone's S3 client.
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: Deno.env.get("HOME") ?? "/",
      ...env,
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function obscure(secret: string): Promise<string> {
  const r = await rclone({}, ["obscure", secret]);
  if (r.code !== 0) throw new Error(`rclone obscure failed: ${r.stderr}`);
  return r.stdout.trim();
}

/** Every file below the remote root: path, size. Throws when rclone fails. */
export async function rcloneList(
  remote: Remote,
  sub = "",
): Promise<{ Path: string; Size: number; Name: string }[]> {
  const r = await rclone(remote.rcloneEnv, [
    "lsjson",
    "-R",
    "--files-only",
    remote.rcloneRoot + (sub ? "/" + sub : ""),
  ]);
  if (r.code !== 0) {
    if (/directory not found|not found|doesn't exist/i.test(r.stderr)) return [];
    throw new Error(`rclone lsjson failed (${r.code}): ${r.stderr.slice(-1500)}`);
  }
  const list = JSON.parse(r.stdout) as { Path: string; Size: number; Name: string }[];
  return list.map((f) => ({ ...f, Path: unrclone(f.Path), Name: unrclone(f.Name) }));
}

/**
 * Undoes rclone's display encoding of names: control characters are shown
 * as their Unicode pictures (U+2400…U+241F), and a literal picture is
 * quoted with U+201B.
 */
function unrclone(name: string): string {
  return name.replace(
    /\u201B(.)|([\u2400-\u241F])/gu,
    (_m, quoted: string | undefined, pic: string | undefined) =>
      quoted ?? String.fromCharCode(pic!.charCodeAt(0) - 0x2400),
  );
}

/**
 * Compares a local tree with a remote directory by rclone (sizes and, where
 * both sides have them, MD5s) and looks for temp files. "" when identical.
 */
export async function rcloneCompare(remote: Remote, src: string, sub = ""): Promise<string> {
  const files = await rcloneList(remote, sub);
  const temps = files.filter((f) => f.Name.startsWith(".fctmp-")).map((f) => f.Path);
  if (temps.length > 0) return `temp files left at the destination: ${temps.join(", ")}`;
  const r = await rclone(remote.rcloneEnv, [
    "check",
    src,
    remote.rcloneRoot + (sub ? "/" + sub : ""),
    "--one-way=false",
  ]);
  if (r.code === 0) return "";
  return `rclone check (${r.code}):\n${
    r.stderr.split("\n").filter((l) => /ERROR|NOTICE|differ|not in/.test(l)).slice(0, 30).join("\n")
  }`;
}

/** Writes `content` to a remote file with rclone (another client changing the destination). */
export async function rcloneRcat(remote: Remote, file: string, content: string): Promise<void> {
  const child = new Deno.Command("rclone", {
    args: ["--config", "/dev/null", "rcat", `${remote.rcloneRoot}/${file}`],
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: Deno.env.get("HOME") ?? "/",
      ...remote.rcloneEnv,
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(content));
  await w.close();
  const out = await child.output();
  if (out.code !== 0) {
    throw new Error(`rclone rcat failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** `length` bytes of a remote file from `offset`, read by rclone. */
export async function rcloneCat(
  remote: Remote,
  file: string,
  offset: number,
  length: number,
): Promise<Uint8Array> {
  const out = await new Deno.Command("rclone", {
    args: [
      "--config",
      "/dev/null",
      "cat",
      "--offset",
      String(offset),
      "--count",
      String(length),
      `${remote.rcloneRoot}/${file}`,
    ],
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: Deno.env.get("HOME") ?? "/",
      ...remote.rcloneEnv,
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (out.code !== 0) throw new Error(`rclone cat failed: ${new TextDecoder().decode(out.stderr)}`);
  return out.stdout;
}

/** The SFTP test server, with a fresh directory below the login directory. */
export async function sftpRemote(): Promise<Remote & { info: SftpInfo; dir: string }> {
  const info = await startServer("sftp");
  const dir = `fc-rel-${crypto.randomUUID().slice(0, 8)}`;
  const pass = await obscure(info.password);
  return {
    kind: "sftp",
    info,
    dir,
    port: info.port,
    secrets: [info.password],
    serverXml(name, opts = {}) {
      return `<server name="${name}" transporter="sftp">
      <host>127.0.0.1</host>
      <port>${opts.port ?? info.port}</port>
      <username>${info.username}</username>
      <password>${info.password}</password>
      <path>${dir}</path>
      <url>https://sftp.cdn.test/${dir}/</url>
      <host_key_fingerprint>${info.hostKeyFingerprint}</host_key_fingerprint>
      ${opts.extra ?? ""}
    </server>`;
    },
    rcloneRoot: `fcsftp:${dir}`,
    rcloneEnv: {
      RCLONE_CONFIG_FCSFTP_TYPE: "sftp",
      RCLONE_CONFIG_FCSFTP_HOST: "127.0.0.1",
      RCLONE_CONFIG_FCSFTP_PORT: String(info.port),
      RCLONE_CONFIG_FCSFTP_USER: info.username,
      RCLONE_CONFIG_FCSFTP_PASS: pass,
      RCLONE_CONFIG_FCSFTP_KNOWN_HOSTS_FILE: info.knownHostsPath,
    },
    cleanup() {
      fs.rmSync(path.join(info.root, dir), { recursive: true, force: true });
      return Promise.resolve();
    },
  };
}

/** The S3 API of the Swift test server, with a fresh bucket. */
export async function s3Remote(): Promise<Remote & { info: SwiftInfo; bucket: string }> {
  const info = await startServer("swift");
  const bucket = `fc-rel-${crypto.randomUUID().slice(0, 8)}`;
  const port = Number(new URL(info.s3Endpoint).port);
  const env = {
    RCLONE_CONFIG_FCS3_TYPE: "s3",
    RCLONE_CONFIG_FCS3_PROVIDER: "Other",
    RCLONE_CONFIG_FCS3_ENDPOINT: info.s3Endpoint,
    RCLONE_CONFIG_FCS3_ACCESS_KEY_ID: info.accessKeyId,
    RCLONE_CONFIG_FCS3_SECRET_ACCESS_KEY: info.secretAccessKey,
    RCLONE_CONFIG_FCS3_REGION: info.region,
    RCLONE_CONFIG_FCS3_FORCE_PATH_STYLE: "true",
  };
  return {
    kind: "s3",
    info,
    bucket,
    port,
    secrets: [info.secretAccessKey],
    serverXml(name, opts = {}) {
      const endpoint = opts.port ? `http://127.0.0.1:${opts.port}` : info.s3Endpoint;
      return `<server name="${name}" transporter="s3">
      <access_key_id>${info.accessKeyId}</access_key_id>
      <secret_access_key>${info.secretAccessKey}</secret_access_key>
      <bucket_name>${bucket}</bucket_name>
      <endpoint>${endpoint}</endpoint>
      <region>${info.region}</region>
      <force_path_style>true</force_path_style>
      <checksum>when_required</checksum>
      <create_bucket>true</create_bucket>
      <url>https://s3.cdn.test/${bucket}/</url>
      ${opts.extra ?? ""}
    </server>`;
    },
    rcloneRoot: `fcs3:${bucket}`,
    rcloneEnv: env,
    async cleanup() {
      await rclone(env, ["purge", `fcs3:${bucket}`]).catch(() => {});
    },
  };
}
