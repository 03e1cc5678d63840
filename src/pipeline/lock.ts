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
 * How long a lock held by an instance that recorded no pid is waited for,
 * ms: an instance removes its pid file just before it releases the lock at
 * the end of its stop, so a restart right after a stop (a supervisor, a
 * script) finds the lock still held for a moment.
 */
export const LOCK_WAIT_MS = 3000;

/**
 * Locks the data directory for the process lifetime; refuses when another
 * instance holds it, naming its pid when recorded. A holder that recorded
 * no pid (one that is ending, or has not started running yet) is waited for
 * up to {@linkcode LOCK_WAIT_MS}; one that did is refused at once.
 *
 * @throws {ClassifiedError} (fatal) when another instance runs.
 */
export async function lockDataDir(
  dataDir: string,
  waitMs: number = LOCK_WAIT_MS,
): Promise<Deno.FsFile> {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = await Deno.open(path.join(dataDir, "lock"), {
    create: true,
    write: true,
    mode: 0o600,
  });
  const until = Date.now() + waitMs;
  for (;;) {
    if (await file.tryLock(true)) return file;
    const pid = recordedPid(dataDir);
    if (pid || Date.now() >= until) {
      file.close();
      throw new ClassifiedError(
        `Another fileconveyor${
          pid ? ` (pid ${pid})` : ""
        } is already running with data directory "${dataDir}"`,
        "fatal",
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The pid in the data directory's pid file; "" when none is recorded. */
function recordedPid(dataDir: string): string {
  try {
    return fs.readFileSync(path.join(dataDir, "daemon.pid"), "utf8").trim();
  } catch {
    return "";
  }
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
