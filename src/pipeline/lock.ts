/**
 * The data directory lock (one daemon per data directory) and the pid
 * files.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ClassifiedError } from "../errors.ts";

/**
 * Locks the data directory for the process lifetime; refuses when another
 * instance holds it, naming its pid when recorded.
 *
 * @throws {ClassifiedError} (fatal) when another instance runs.
 */
export async function lockDataDir(dataDir: string): Promise<Deno.FsFile> {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = await Deno.open(path.join(dataDir, "lock"), {
    create: true,
    write: true,
    mode: 0o600,
  });
  if (!(await file.tryLock(true))) {
    file.close();
    let pid = "";
    try {
      pid = fs.readFileSync(path.join(dataDir, "daemon.pid"), "utf8").trim();
    } catch {
      // No pid recorded.
    }
    throw new ClassifiedError(
      `Another fileconveyor${
        pid ? ` (pid ${pid})` : ""
      } is already running with data directory "${dataDir}"`,
      "fatal",
    );
  }
  return file;
}

/** Writes the data directory's pid file. */
export function writeDataDirPid(dataDir: string): void {
  fs.writeFileSync(path.join(dataDir, "daemon.pid"), String(Deno.pid), { mode: 0o600 });
}

/**
 * Writes the configured pid file. Never world-writable (whatever the umask):
 * a replaced pid file makes scripts kill the wrong process.
 */
export function writePidFile(pidFile: string): void {
  fs.mkdirSync(path.dirname(pidFile), { recursive: true, mode: 0o755 });
  fs.writeFileSync(pidFile, String(Deno.pid) + "\n", { mode: 0o600 });
}

/** Removes the pid files (best effort). */
export function removePidFiles(dataDir: string, pidFile: string | undefined): void {
  try {
    fs.rmSync(path.join(dataDir, "daemon.pid"), { force: true });
    if (pidFile) fs.rmSync(pidFile, { force: true });
  } catch {
    // Best effort.
  }
}
