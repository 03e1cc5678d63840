/**
 * `sftp`: files over SSH (OpenSSH's SFTP subsystem or any SFTP v3 server),
 * with `npm:ssh2`.
 *
 * - Host keys are always verified: against a pinned `host_key_fingerprint`,
 *   or else the `known_hosts` file (hashed entries and `[host]:port` lines
 *   included). An unknown or changed key is refused with a message that
 *   shows the offered key's fingerprint and how to trust it.
 * - Uploads stream the file in 64 KiB writes, at most 16 in flight (1 MiB of
 *   memory per transfer), to a temp name in the target directory; the size
 *   is checked with a stat, then the temp file is renamed over the target
 *   with OpenSSH's atomic `posix-rename@openssh.com` (plain rename, after
 *   removing the target, on servers without it).
 * - Up to `maxConnections` SFTP sessions per server are pooled, up to 8 of
 *   them on one SSH connection (each session has its own server process;
 *   a server that refuses more sessions on a connection gets more
 *   connections), each carrying up to {@linkcode TRANSFERS_PER_SESSION}
 *   uploads at once; each request has a timeout; a broken connection is
 *   dropped and replaced.
 *
 * @module
 */
// Only the option schema, validation and the host-key helpers live here, so
// that registering the transport (every start of the CLI) does not load
// ssh2: the transport itself is in sftp/transport.ts, imported on first create().
import { Buffer } from "node:buffer";
import { createHash, createHmac } from "node:crypto";
import { type OptionSpec, parseSettings, type SettingsOf } from "../options.ts";
import { checkedSettings, registerTransport, type TransportDef } from "./transport.ts";
import { loadModule } from "../lazy.ts";

// ---------------------------------------------------------------------------
// Host keys

/**
 * The SHA-256 fingerprint of an SSH public key blob, as `ssh-keygen -lf`
 * prints it: `SHA256:` and unpadded base64.
 */
export function sha256Fingerprint(blob: Uint8Array): string {
  return "SHA256:" + createHash("sha256").update(blob).digest("base64").replace(/=+$/, "");
}

/** The legacy MD5 fingerprint of an SSH public key blob: `MD5:aa:bb:…`. */
export function md5Fingerprint(blob: Uint8Array): string {
  const hex = createHash("md5").update(blob).digest("hex");
  return "MD5:" + hex.match(/../g)!.join(":");
}

/** The key type named inside an SSH public key blob (`ssh-ed25519`, `ssh-rsa`, …). */
export function keyType(blob: Uint8Array): string {
  if (blob.length < 4) return "unknown";
  const len = ((blob[0]! << 24) | (blob[1]! << 16) | (blob[2]! << 8) | blob[3]!) >>> 0;
  if (len > 64 || 4 + len > blob.length) return "unknown";
  return new TextDecoder().decode(blob.subarray(4, 4 + len));
}

/**
 * Normalizes a pinned fingerprint (`SHA256:base64`, `MD5:aa:bb:…` or bare
 * colon-separated MD5 hex) to the canonical form; undefined when malformed.
 */
export function normalizeFingerprint(text: string): string | undefined {
  const t = text.trim();
  const sha = /^SHA256:([A-Za-z0-9+/]{43})=?$/i.exec(t);
  if (sha) return "SHA256:" + sha[1];
  const md5 = /^(?:MD5:)?((?:[0-9a-f]{2}:){15}[0-9a-f]{2})$/i.exec(t);
  if (md5) return "MD5:" + md5[1]!.toLowerCase();
  return undefined;
}

/** What a known_hosts file says about an offered host key. */
export interface KnownHostsVerdict {
  /**
   * `match`: a line for this host has this key. `mismatch`: lines for this
   * host list another key of the same type. `revoked`: the key is marked
   * `@revoked`. `unknown`: no line for this host and key type.
   */
  status: "match" | "mismatch" | "revoked" | "unknown";
  /** 1-based line that decided (`match`, `mismatch`, `revoked`). */
  line?: number;
  /** Key types listed for this host (any status). */
  knownTypes: string[];
}

/** The name OpenSSH looks up for a host: `host`, or `[host]:port` off port 22. */
export function knownHostsName(host: string, port: number): string {
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp(
    "^" + pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".") +
      "$",
    "i",
  );
  return re.test(name);
}

function hostFieldMatches(field: string, name: string): boolean {
  if (field.startsWith("|1|")) {
    // |1|base64(salt)|base64(HMAC-SHA1(salt, name))
    const [, , salt, hash] = field.split("|");
    if (!salt || !hash) return false;
    const mac = createHmac("sha1", Buffer.from(salt, "base64")).update(name).digest("base64");
    return mac === Buffer.from(hash, "base64").toString("base64");
  }
  let matched = false;
  for (const raw of field.split(",")) {
    const negated = raw.startsWith("!");
    const pattern = negated ? raw.slice(1) : raw;
    if (pattern === "") continue;
    if (globMatch(pattern, name)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

/**
 * Looks up an offered host key in the text of a known_hosts file. Supports
 * hashed host names (`|1|salt|hash`), `[host]:port`, comma-separated
 * patterns with `*`/`?` wildcards and `!` negation, and the `@revoked`
 * marker (`@cert-authority` lines are ignored: certificates are not used).
 */
export function checkKnownHosts(
  text: string,
  host: string,
  port: number,
  blob: Uint8Array,
): KnownHostsVerdict {
  const name = knownHostsName(host, port);
  const type = keyType(blob);
  const offered = Buffer.from(blob).toString("base64");
  const knownTypes = new Set<string>();
  let match: number | undefined;
  let mismatch: number | undefined;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "" || line.startsWith("#")) continue;
    const fields = line.split(/\s+/);
    let marker: string | undefined;
    if (fields[0]!.startsWith("@")) marker = fields.shift();
    const [hosts, ktype, key] = fields;
    if (!hosts || !ktype || !key) continue;
    if (marker === "@cert-authority") continue;
    if (!hostFieldMatches(hosts, name)) continue;
    if (marker === "@revoked") {
      if (key === offered) return { status: "revoked", line: i + 1, knownTypes: [...knownTypes] };
      continue;
    }
    knownTypes.add(ktype);
    if (ktype !== type) continue;
    if (key === offered) match ??= i + 1;
    else mismatch ??= i + 1;
  }
  if (match !== undefined) return { status: "match", line: match, knownTypes: [...knownTypes] };
  if (mismatch !== undefined) {
    return { status: "mismatch", line: mismatch, knownTypes: [...knownTypes] };
  }
  return { status: "unknown", knownTypes: [...knownTypes] };
}

// ---------------------------------------------------------------------------
// Registration

const OPTIONS = [
  { name: "host", required: true, help: "Server host name or IP address" },
  {
    name: "port",
    type: "integer",
    default: "22",
    min: 1,
    max: 65535,
    help: "SSH port",
  },
  { name: "username", required: true, help: "Login name" },
  {
    name: "password",
    secret: true,
    help: "Password (also answers keyboard-interactive prompts)",
  },
  {
    name: "key",
    type: "path",
    help: "Private key file (OpenSSH or PEM format; ed25519, ECDSA or RSA)",
  },
  { name: "passphrase", secret: true, help: "Passphrase of an encrypted private key" },
  {
    name: "agent",
    type: "boolean",
    help:
      "Authenticate with the ssh-agent at SSH_AUTH_SOCK (default: true when neither password nor key is set)",
  },
  {
    name: "path",
    default: "",
    help:
      "Remote root directory: relative to the login directory, or absolute (created if missing)",
  },
  { name: "url", type: "url", required: true, help: "Public base URL of the remote root" },
  {
    name: "known_hosts",
    type: "path",
    default: "~/.ssh/known_hosts",
    help:
      "OpenSSH known_hosts file used to verify the server's host key (hashed entries supported)",
  },
  {
    name: "host_key_fingerprint",
    help:
      'Pinned host key fingerprint as "ssh-keygen -lf" prints it ("SHA256:…", or MD5 hex); replaces known_hosts',
  },
  {
    name: "insecure_skip_host_key_check",
    type: "boolean",
    default: "false",
    help: "Accept any host key (DANGEROUS: allows man-in-the-middle attacks; logged loudly)",
  },
] as const satisfies readonly OptionSpec[];

/** The settings of an `sftp` server, parsed from its option values. */
export type SftpOptions = SettingsOf<typeof OPTIONS>;

/** Problems with settings that each option's own check cannot see. */
function validate(v: SftpOptions): string[] {
  const problems: string[] = [];
  const fp = v.host_key_fingerprint;
  if (fp !== undefined && fp.trim() !== "" && normalizeFingerprint(fp) === undefined) {
    problems.push(
      `Setting "host_key_fingerprint" must look like "SHA256:" followed by 43 base64 characters ` +
        `(as ssh-keygen -lf prints it) or an MD5 fingerprint "aa:bb:…", not "${fp}"`,
    );
  }
  if (v.insecure_skip_host_key_check && fp !== undefined && fp.trim() !== "") {
    problems.push(
      `Settings "insecure_skip_host_key_check" and "host_key_fingerprint" contradict each other: remove one`,
    );
  }
  if (v.passphrase !== undefined && v.key === undefined) {
    problems.push(`Setting "passphrase" needs "key"`);
  }
  if (
    v.agent === true && v.password === undefined && v.key === undefined &&
    !Deno.env.get("SSH_AUTH_SOCK")
  ) {
    problems.push(`Setting "agent" is true but SSH_AUTH_SOCK is not set`);
  }
  return problems;
}

/**
 * Uploads that share one SFTP session at most (see `sftp/sessions.ts`): a
 * server process then works through several files per wake-up instead of
 * idling through each file's three round trips.
 */
export const TRANSFERS_PER_SESSION = 16;

const SFTP: TransportDef = {
  name: "sftp",
  summary:
    "SFTP over SSH (OpenSSH and others): verified host keys, atomic replace, pooled connections",
  options: OPTIONS,
  validate: (values) => validate(parseSettings(OPTIONS, values)),
  transfersPerConnection: TRANSFERS_PER_SESSION,
  async create(values, ctx) {
    const settings = parseSettings(OPTIONS, checkedSettings(SFTP, values, ctx.serverName));
    const { createSftp } = await loadModule<typeof import("./sftp/transport.ts")>(
      "transports/sftp/transport.ts",
    );
    return createSftp(settings, ctx);
  },
};

registerTransport(SFTP);
