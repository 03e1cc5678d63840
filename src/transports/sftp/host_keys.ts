/**
 * Host key verification of an SSH connection: the key algorithms to offer
 * (those known_hosts lists for the host first) and the verifier that
 * accepts a key only when it matches `host_key_fingerprint` or known_hosts
 * (or when verification is off, with a warning), explaining a refusal.
 *
 * @module
 */
import type { Buffer } from "node:buffer";
import * as fs from "node:fs/promises";
import { errorMessage } from "../../errors.ts";
import {
  checkKnownHosts,
  keyType,
  knownHostsName,
  md5Fingerprint,
  sha256Fingerprint,
} from "../sftp.ts";
import type { ConnectEnv } from "./connect.ts";
import { ConnectFailure } from "./errors.ts";

/** Host key algorithms ssh2 offers by default, strongest first. */
const HOST_KEY_ALGORITHMS = [
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "rsa-sha2-512",
  "rsa-sha2-256",
  "ssh-rsa",
] as const;

/** Host key algorithms to offer, those whose keys known_hosts lists for the host first. */
function hostKeyOrder(knownTypes: readonly string[]): string[] {
  const preferred: string[] = [];
  for (const t of knownTypes) {
    if (t === "ssh-rsa") preferred.push("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa");
    else if ((HOST_KEY_ALGORITHMS as readonly string[]).includes(t)) preferred.push(t);
  }
  const rest = HOST_KEY_ALGORITHMS.filter((a) => !preferred.includes(a));
  return [...new Set([...preferred, ...rest])];
}

/** What {@linkcode hostKeyCheck} gives a connection. */
export interface HostKeyCheck {
  /** Host key algorithms to offer, strongest known first. */
  algorithms: string[];
  /** ssh2's `hostVerifier`: whether the server's key is trusted. */
  verify(key: Buffer): boolean;
  /** Why the last key was refused, with what to do; undefined when none was. */
  refusal(): string | undefined;
}

/**
 * Reads known_hosts (unless a fingerprint is pinned or verification is off)
 * and returns the check for one connection.
 *
 * @throws {ConnectFailure} (auth) when known_hosts exists but cannot be read.
 */
export async function hostKeyCheck(env: ConnectEnv): Promise<HostKeyCheck> {
  const s = env.s;
  let knownText = "";
  let knownTypes: string[] = [];
  if (!s.insecure && s.pinned === undefined) {
    try {
      knownText = await fs.readFile(s.knownHosts, "utf8");
    } catch (err) {
      if ((err as { code?: string }).code !== "ENOENT") {
        throw new ConnectFailure(
          env.server,
          `cannot read known_hosts "${s.knownHosts}": ${errorMessage(err)}`,
          { cause: err },
          "auth",
        );
      }
    }
    knownTypes = checkKnownHosts(knownText, s.host, s.port, new Uint8Array()).knownTypes;
  }
  let refusal: string | undefined;
  const verify = (key: Buffer): boolean => {
    const fp = sha256Fingerprint(key);
    const type = keyType(key);
    if (s.insecure) {
      env.log.warn(`Accepting host key ${type} ${fp} of ${s.host}:${s.port} UNCHECKED`);
      return true;
    }
    const trustHint = `If this is the right server, set host_key_fingerprint to "${fp}" ` +
      `or add its key to known_hosts "${s.knownHosts}" ` +
      `(e.g. ssh-keyscan -p ${s.port} -t ${type} ${s.host} >> ${s.knownHosts}, ` +
      `after comparing the fingerprint with ssh-keygen -lf on the server)`;
    if (s.pinned !== undefined) {
      const actual = s.pinned.startsWith("MD5:") ? md5Fingerprint(key) : fp;
      if (actual === s.pinned) return true;
      refusal = `its host key ${type} ${fp} does not match host_key_fingerprint "${s.pinned}"` +
        ` (the key changed, or someone is intercepting the connection). ${trustHint}`;
      return false;
    }
    const verdict = checkKnownHosts(knownText, s.host, s.port, key);
    switch (verdict.status) {
      case "match":
        return true;
      case "revoked":
        refusal = `its host key ${type} ${fp} is marked @revoked in known_hosts "${s.knownHosts}"` +
          ` line ${verdict.line}`;
        return false;
      case "mismatch":
        refusal = `its host key ${type} ${fp} does NOT match the key in known_hosts ` +
          `"${s.knownHosts}" line ${verdict.line}: the server's key changed, or someone is ` +
          `intercepting the connection. If the change is expected, remove that line ` +
          `(ssh-keygen -R "${knownHostsName(s.host, s.port)}" -f ${s.knownHosts}) and trust ` +
          `the new key: set host_key_fingerprint to "${fp}" or add it to known_hosts`;
        return false;
      default:
        refusal =
          `its host key ${type} ${fp} is unknown (not in known_hosts "${s.knownHosts}"). ${trustHint}`;
        return false;
    }
  };
  return { algorithms: hostKeyOrder(knownTypes), verify, refusal: () => refusal };
}
