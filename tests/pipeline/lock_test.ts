/**
 * The data directory lock: a second instance is refused, naming the pid of
 * the first; a holder that recorded no pid (it is ending) is waited for a
 * moment, so a restart right after a stop starts.
 *
 * @module
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { lockDataDir, writeDataDirPid } from "../../src/pipeline/lock.ts";
import { assert, assertEquals } from "../_assert.ts";

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "fc-lock-"));
}

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as Error).message;
  }
  return "";
}

Deno.test("lockDataDir() refuses a second instance at once, naming the running one's pid", async () => {
  const dir = tempDir();
  const first = await lockDataDir(dir);
  try {
    writeDataDirPid(dir);
    const t0 = Date.now();
    const message = await refusal(lockDataDir(dir));
    assertEquals(
      message,
      `Another fileconveyor (pid ${Deno.pid}) is already running with data directory "${dir}"`,
    );
    assert(Date.now() - t0 < 1000, "a running instance is refused without waiting");
  } finally {
    first.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("lockDataDir() waits for a holder without a pid that lets go (a stop ending), and no longer than its bound", async () => {
  const dir = tempDir();
  try {
    const ending = await lockDataDir(dir);
    setTimeout(() => ending.close(), 300);
    const next = await lockDataDir(dir);
    next.close();
    // A holder that never lets go: refused after the bound, without a pid to name.
    const stuck = await lockDataDir(dir);
    try {
      const t0 = Date.now();
      const message = await refusal(lockDataDir(dir, 400));
      assertEquals(message, `Another fileconveyor is already running with data directory "${dir}"`);
      assert(Date.now() - t0 >= 400);
    } finally {
      stuck.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
