/**
 * `ftp`: plain FTP, explicit FTPS (AUTH TLS) and implicit FTPS, with
 * `npm:basic-ftp` (passive mode only).
 *
 * - Certificates are verified by default: against the system roots, the
 *   `ca` file, or a pinned `tls_fingerprint` (checked before the password is
 *   sent and again on every data connection).
 * - Uploads go to a temp name in the target directory, the stored size is
 *   checked (MLST where the server has it, SIZE otherwise), then RNFR/RNTO
 *   renames it over the target (removing the target first only when the
 *   server refuses to rename over an existing file).
 * - Up to `maxConnections` control connections per server are pooled; every
 *   command and data transfer has a timeout.
 * - Deno's TLS cannot resume a TLS session, and servers that require the
 *   data connection to resume the control connection's session refuse every
 *   transfer. That reply is recognised, and the server's connections switch
 *   to the system's OpenSSL (`ftp/_ssl_socket.ts`), whose data connections
 *   resume the session; where OpenSSL cannot be loaded, the error names the
 *   server setting to change.
 *
 * @module
 */
// Only the option schema, validation and the exported helpers live here, so
// that registering the transport (every start of the CLI) does not load
// basic-ftp: the transport itself is in ftp/transport.ts, imported on first
// create().
import { type OptionSpec, parseSettings, type SettingsOf } from "../options.ts";
import { checkedSettings, registerTransport, type TransportDef } from "./transport.ts";
import { loadModule } from "../lazy.ts";

/**
 * Normalizes a SHA-256 certificate fingerprint (hex, with or without
 * colons, any case, optional `SHA256:` prefix) to colon-separated
 * uppercase hex as `openssl x509 -fingerprint -sha256` prints it.
 */
export function normalizeCertFingerprint(text: string): string | undefined {
  const hex = text.trim().replace(/^sha-?256[:=]?/i, "").replace(/[:\s]/g, "").toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(hex)) return undefined;
  return hex.match(/../g)!.join(":");
}

/**
 * Whether an FTP reply to a data transfer means the server insists on TLS
 * session reuse for data connections (vsftpd: 522, FileZilla Server and
 * ProFTPD: 425; ProFTPD's text is a bare "Operation not permitted").
 */
export function isSessionReuseRefusal(code: number, message: string): boolean {
  if (code === 522) return true;
  if (code !== 425 && code !== 450) return false;
  return /reuse|resum|operation not permitted|session/i.test(message);
}

/** Text for users whose server insists on TLS session reuse. */
export const SESSION_REUSE_HELP: string =
  "the FTPS server refused the TLS data connection, most likely because it requires data " +
  "connections to resume the control connection's TLS session. Deno's TLS cannot do that; " +
  "fileconveyor then uses the system's OpenSSL library (libssl 3 or 1.1, with the --allow-ffi " +
  "permission). Where that is not possible, allow data connections without session reuse on " +
  'the server: ProFTPD "TLSOptions NoSessionReuseRequired" (mod_tls), vsftpd ' +
  '"require_ssl_reuse=NO", AWS Transfer Family "TlsSessionResumptionMode ENABLED" (not ' +
  'ENFORCED), z/OS "SECURE_SESSION_REUSE ALLOWED" (FileZilla Server 1.x cannot turn the check ' +
  "off); or use the sftp transport";

// ---------------------------------------------------------------------------
// Registration

const OPTIONS = [
  { name: "host", required: true, help: "Server host name or IP address" },
  {
    name: "port",
    type: "integer",
    min: 1,
    max: 65535,
    help: "Control port (default 21, or 990 with tls implicit)",
  },
  { name: "username", required: true, help: "Login name" },
  { name: "password", required: true, secret: true, help: "Password" },
  {
    name: "path",
    default: "",
    help:
      "Remote root directory: relative to the login directory, or absolute (created if missing)",
  },
  { name: "url", type: "url", required: true, help: "Public base URL of the remote root" },
  {
    name: "tls",
    type: "enum",
    values: ["none", "explicit", "implicit"],
    default: "none",
    help:
      "none: plain FTP; explicit: FTPS with AUTH TLS (FTPES); implicit: FTPS with TLS from the first byte",
  },
  {
    name: "ca",
    type: "path",
    help: "PEM file with the CA or self-signed certificate to trust instead of the system roots",
  },
  {
    name: "tls_fingerprint",
    help:
      "Pinned SHA-256 fingerprint of the server certificate (hex, colons optional); trusted instead of CA checks",
  },
  {
    name: "insecure_skip_verify",
    type: "boolean",
    default: "false",
    help: "Accept any TLS certificate (DANGEROUS: allows man-in-the-middle attacks; logged loudly)",
  },
  {
    name: "passive",
    type: "boolean",
    default: "true",
    help: "Passive mode data connections; the only mode supported (active mode is refused)",
  },
] as const satisfies readonly OptionSpec[];

/** The settings of an `ftp` server, parsed from its option values. */
export type FtpOptions = SettingsOf<typeof OPTIONS>;

/** Problems with settings that each option's own check cannot see. */
function validate(v: FtpOptions): string[] {
  const problems: string[] = [];
  const tls = v.tls;
  if (!v.passive) {
    problems.push(`Setting "passive" cannot be false: only passive mode is supported`);
  }
  const fp = v.tls_fingerprint;
  if (fp !== undefined && fp.trim() !== "" && normalizeCertFingerprint(fp) === undefined) {
    problems.push(
      `Setting "tls_fingerprint" must be a SHA-256 fingerprint (64 hex digits, colons optional), not "${fp}"`,
    );
  }
  if (tls === "none") {
    for (const name of ["ca", "tls_fingerprint"] as const) {
      if (v[name] !== undefined && v[name]!.trim() !== "") {
        problems.push(`Setting "${name}" needs tls "explicit" or "implicit"`);
      }
    }
  }
  if (v.insecure_skip_verify && fp !== undefined && fp.trim() !== "") {
    problems.push(
      `Settings "insecure_skip_verify" and "tls_fingerprint" contradict each other: remove one`,
    );
  }
  for (const name of ["username", "password", "path"] as const) {
    if (v[name] !== undefined && /[\r\n]/.test(v[name]!)) {
      problems.push(`Setting "${name}" must not contain line breaks`);
    }
  }
  return problems;
}

const FTP: TransportDef = {
  name: "ftp",
  summary:
    "FTP and FTPS (explicit or implicit TLS, verified certificates), passive mode, pooled connections",
  options: OPTIONS,
  validate: (values) => validate(parseSettings(OPTIONS, values)),
  async create(values, ctx) {
    const settings = parseSettings(OPTIONS, checkedSettings(FTP, values, ctx.serverName));
    const { createFtp } = await loadModule<typeof import("./ftp/transport.ts")>(
      "transports/ftp/transport.ts",
    );
    return createFtp(settings, ctx);
  },
};

registerTransport(FTP);
