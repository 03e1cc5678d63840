/**
 * Group names to numeric ids (Deno has no getgrnam).
 *
 * @module
 */
import * as fs from "node:fs";

/**
 * The id of group `name` (or of a numeric id given as text), from
 * `/etc/group` and then `getent group` (LDAP, systemd-userdb); undefined
 * when no such group exists.
 */
export function groupId(name: string): number | undefined {
  if (/^\d+$/.test(name)) return Number(name);
  const find = (text: string) => {
    for (const line of text.split("\n")) {
      const [n, , gid] = line.split(":");
      if (n === name && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
    }
    return undefined;
  };
  try {
    const id = find(fs.readFileSync("/etc/group", "utf8"));
    if (id !== undefined) return id;
  } catch {
    // No /etc/group (macOS keeps groups elsewhere): ask getent.
  }
  try {
    const out = new Deno.Command("getent", {
      args: ["group", name],
      stdout: "piped",
      stderr: "null",
    })
      .outputSync();
    if (out.code === 0) return find(new TextDecoder().decode(out.stdout));
  } catch {
    // No getent.
  }
  return undefined;
}
