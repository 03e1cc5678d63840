/**
 * How each tool is run against each destination: fileconveyor configs,
 * rclone (on-the-fly remotes from environment variables), rsync (locally and
 * over SSH) and lsyncd (Lua configs). Every command is also rendered as text
 * for the report.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { SftpInfo, SwiftInfo } from "../../tests/_servers.ts";

/** Absolute path of the CLI entry the benchmark runs. */
export const FC_ENTRY = path.resolve(import.meta.dirname!, "..", "..", "mod.ts");

/** A destination of one run. */
export type Dest =
  | { kind: "local"; dir: string }
  /** `dir` is relative to the SFTP user's home (`info.root`). */
  | { kind: "sftp"; info: SftpInfo; dir: string }
  | { kind: "s3"; info: SwiftInfo; bucket: string };

/** A command with its environment, and how to show it in the report. */
export interface ToolCommand {
  cmd: string[];
  env: Record<string, string>;
  unsetEnv: string[];
  /** The command as a reader would type it (secrets replaced). */
  shown: string;
}

function q(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

function show(cmd: string[], env: Record<string, string> = {}, secrets: string[] = []): string {
  let s = [...Object.entries(env).map(([k, v]) => `${k}=${q(v)}`), ...cmd.map(q)].join(" ");
  for (const x of secrets) if (x) s = s.replaceAll(x, "***");
  return s;
}

function xml(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;");
}

/** The `<server>` element of a destination. */
function serverXml(dest: Dest, concurrency: number, symlinks = false): string {
  const open = (t: string) =>
    `<server name="dst" transporter="${t}" maxConnections="${concurrency}">`;
  switch (dest.kind) {
    case "local":
      return `${open("symlink_or_copy")}
      <location>${xml(dest.dir)}</location>
      <url>http://cdn.test/</url>
      <copy>${symlinks ? "false" : "true"}</copy>
    </server>`;
    case "sftp":
      return `${open("sftp")}
      <host>${dest.info.host}</host>
      <port>${dest.info.port}</port>
      <username>${xml(dest.info.username)}</username>
      <key>${xml(dest.info.keyPath)}</key>
      <known_hosts>${xml(dest.info.knownHostsPath)}</known_hosts>
      <path>${xml(dest.dir)}</path>
      <url>http://cdn.test/</url>
    </server>`;
    case "s3":
      return `${open("s3")}
      <access_key_id>${xml(dest.info.accessKeyId)}</access_key_id>
      <secret_access_key>${xml(dest.info.secretAccessKey)}</secret_access_key>
      <bucket_name>${xml(dest.bucket)}</bucket_name>
      <endpoint>${xml(dest.info.s3Endpoint)}</endpoint>
      <region>${xml(dest.info.region)}</region>
      <force_path_style>true</force_path_style>
      <checksum>when_required</checksum>
      <create_bucket>true</create_bucket>
      <url>http://cdn.test/</url>
    </server>`;
  }
}

/** Options for {@linkcode fcConfig}. */
export interface FcConfigOptions {
  src: string;
  dest: Dest;
  dataDir: string;
  concurrency: number;
  /** Local destination only: symlink unprocessed files (the transporter's default). */
  symlinks?: boolean;
  /** Extra `<settings>` children. */
  settings?: Record<string, string>;
}

/** Writes a fileconveyor config for one source and one destination; returns its path. */
export function fcConfig(file: string, o: FcConfigOptions): string {
  const settings: Record<string, string> = { dataDir: o.dataDir, ...o.settings };
  fs.writeFileSync(
    file,
    `<?xml version="1.0" encoding="UTF-8"?>
<config>
  <sources>
    <source name="src" scanPath="${xml(o.src)}" />
  </sources>
  <servers>
    ${serverXml(o.dest, o.concurrency, o.symlinks)}
  </servers>
  <rules>
    <rule for="src" label="all">
      <destinations><destination server="dst" /></destinations>
    </rule>
  </rules>
  <settings>
${Object.entries(settings).map(([k, v]) => `    <${k}>${xml(v)}</${k}>`).join("\n")}
  </settings>
</config>
`,
  );
  return file;
}

/** `fileconveyor sync --config FILE [--once]`. */
export function fcCommand(config: string, once: boolean, entry = FC_ENTRY): ToolCommand {
  const cmd = [Deno.execPath(), "run", "-A", entry, "sync", "--config", config];
  if (once) cmd.push("--once");
  return {
    cmd,
    env: {},
    unsetEnv: [],
    shown: `deno run -A mod.ts sync --config ${config}${once ? " --once" : ""}`,
  };
}

function sshCommand(info: SftpInfo): string {
  return `ssh -p ${info.port} -i ${info.keyPath} -o UserKnownHostsFile=${info.knownHostsPath} ` +
    `-o StrictHostKeyChecking=yes -o BatchMode=yes`;
}

/** `rclone copy SRC DEST --transfers N --checkers N` with an on-the-fly remote. */
export function rcloneCommand(
  src: string,
  dest: Dest,
  concurrency: number,
  extra: string[] = [],
): ToolCommand {
  const base = ["--transfers", String(concurrency), "--checkers", String(concurrency), ...extra];
  const env: Record<string, string> = { RCLONE_CONFIG: "/dev/null" };
  let target: string;
  const secrets: string[] = [];
  switch (dest.kind) {
    case "local":
      target = dest.dir;
      break;
    case "sftp":
      Object.assign(env, {
        RCLONE_SFTP_HOST: dest.info.host,
        RCLONE_SFTP_PORT: String(dest.info.port),
        RCLONE_SFTP_USER: dest.info.username,
        RCLONE_SFTP_KEY_FILE: dest.info.keyPath,
        RCLONE_SFTP_KNOWN_HOSTS_FILE: dest.info.knownHostsPath,
      });
      target = `:sftp:${dest.dir}`;
      break;
    case "s3":
      Object.assign(env, {
        RCLONE_S3_PROVIDER: "Other",
        RCLONE_S3_ACCESS_KEY_ID: dest.info.accessKeyId,
        RCLONE_S3_SECRET_ACCESS_KEY: dest.info.secretAccessKey,
        RCLONE_S3_ENDPOINT: dest.info.s3Endpoint,
        RCLONE_S3_REGION: dest.info.region,
        RCLONE_S3_FORCE_PATH_STYLE: "true",
      });
      secrets.push(dest.info.secretAccessKey);
      target = `:s3:${dest.bucket}`;
      break;
  }
  const cmd = ["rclone", "copy", src, target, ...base];
  // rclone's S3 client refuses the machine's AWS_CA_BUNDLE; nothing here uses TLS.
  return { cmd, env, unsetEnv: ["AWS_CA_BUNDLE"], shown: show(cmd, env, secrets) };
}

/** `rsync -a SRC/ DEST/`, over SSH for an SFTP destination (S3: none). */
export function rsyncCommand(src: string, dest: Dest): ToolCommand | undefined {
  let cmd: string[];
  if (dest.kind === "local") cmd = ["rsync", "-a", src + "/", dest.dir + "/"];
  else if (dest.kind === "sftp") {
    cmd = [
      "rsync",
      "-a",
      "-e",
      sshCommand(dest.info),
      src + "/",
      `${dest.info.username}@${dest.info.host}:${dest.dir}/`,
    ];
  } else return undefined;
  return { cmd, env: {}, unsetEnv: [], shown: show(cmd) };
}

/** Writes an lsyncd config (default.rsync; `delay` undefined keeps lsyncd's default). */
export function lsyncdConfig(
  file: string,
  o: { src: string; dest: Dest; delay?: number; logFile: string; statusFile: string },
): string {
  let target: string;
  let rsh = "";
  if (o.dest.kind === "local") target = o.dest.dir;
  else if (o.dest.kind === "sftp") {
    target = `${o.dest.info.username}@${o.dest.info.host}:${o.dest.dir}`;
    rsh = `,\n  rsync = { archive = true, rsh = ${JSON.stringify(sshCommand(o.dest.info))} }`;
  } else throw new Error("lsyncd cannot sync to S3");
  fs.writeFileSync(
    file,
    `settings {
  logfile = ${JSON.stringify(o.logFile)},
  statusFile = ${JSON.stringify(o.statusFile)},
  nodaemon = true,
  inotifyMode = "CloseWrite",
}
sync {
  default.rsync,
  source = ${JSON.stringify(o.src)},
  target = ${JSON.stringify(target)}${o.delay === undefined ? "" : `,\n  delay = ${o.delay}`}${rsh}
}
`,
  );
  return file;
}

/** `lsyncd CONFIG`. */
export function lsyncdCommand(config: string): ToolCommand {
  const cmd = ["lsyncd", config];
  return { cmd, env: {}, unsetEnv: [], shown: show(cmd) };
}
