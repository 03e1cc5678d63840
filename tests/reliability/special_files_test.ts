/**
 * Unreadable files and directories, symlink loops, FIFOs and sockets in a
 * source tree: each is skipped or fails with a reason; nothing hangs,
 * nothing crashes, everything else syncs.
 *
 * We run as root, whom file modes do not stop. The daemon therefore runs
 * under `setpriv` without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (see
 * `NO_DAC`): still uid 0, but `chmod 000` now applies to it, exactly as for
 * an unprivileged user.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { cli, localConfig, sleep, type Workspace, workspace, write } from "../_harness.ts";
import { NO_DAC, type Proc, run, start, until } from "./_util.ts";

function config(ws: Workspace) {
  localConfig(ws, { settings: { rescanInterval: "2", retryFailAfter: "1" } });
}

async function mkfifo(p: string) {
  const r = await new Deno.Command("mkfifo", { args: [p] }).output();
  assertEquals(r.code, 0, "mkfifo");
}

function special(ws: Workspace): { socket: Deno.Listener } {
  write(path.join(ws.src, "ok/a.txt"), "fine\n");
  write(path.join(ws.src, "ok/b.txt"), "fine too\n");
  write(path.join(ws.src, "secret.txt"), "no read permission\n");
  fs.chmodSync(path.join(ws.src, "secret.txt"), 0o000);
  write(path.join(ws.src, "closed/inside.txt"), "in an unreadable directory\n");
  fs.chmodSync(path.join(ws.src, "closed"), 0o000);
  write(path.join(ws.src, "listless/hidden.txt"), "directory without read permission\n");
  fs.chmodSync(path.join(ws.src, "listless"), 0o311);
  fs.symlinkSync("loop-b", path.join(ws.src, "loop-a"));
  fs.symlinkSync("loop-a", path.join(ws.src, "loop-b"));
  fs.symlinkSync(".", path.join(ws.src, "ok/self"));
  fs.symlinkSync("..", path.join(ws.src, "ok/parent"));
  fs.symlinkSync("/dev/zero", path.join(ws.src, "zero"));
  fs.symlinkSync("missing-target", path.join(ws.src, "dangling"));
  const socket = Deno.listen({ transport: "unix", path: path.join(ws.src, "daemon.sock") });
  return { socket };
}

function restore(ws: Workspace) {
  for (const p of ["closed", "listless"]) {
    try {
      fs.chmodSync(path.join(ws.src, p), 0o755);
    } catch {
      // Gone.
    }
  }
}

Deno.test("special files: unreadable files and directories, loops, FIFOs and sockets are skipped or fail alone", async () => {
  const ws = workspace("fc-special-");
  const { socket } = special(ws);
  await mkfifo(path.join(ws.src, "pipe"));
  fs.symlinkSync("pipe", path.join(ws.src, "link-to-pipe"));
  let d: Proc | undefined;
  try {
    config(ws);
    // --once first: it must finish (no FIFO read blocks it), exit 1 for the failed file.
    const once = await run(["sync", "--once", "--config", ws.config], {
      prefix: NO_DAC,
      timeoutMs: 60_000,
    });
    assertEquals(once.code, 1, `sync --once: ${once.stderr.slice(-3000)}`);
    const log = once.stderr;
    assertIncludes(log, "Skipping");
    assert(/pipe[^\n]*not a regular file/.test(log), "FIFO not reported as skipped");
    assert(/daemon\.sock[^\n]*not a regular file/.test(log), "socket not reported as skipped");
    assert(/loop-a[^\n]*(loop|broken)/.test(log), "symlink loop not reported");
    assert(/zero[^\n]*outside/.test(log), "link out of the source not reported");
    assert(/Cannot read directory[^\n]*closed/.test(log), "unreadable directory not reported");
    assert(!/Uncaught|panicked/.test(log), "crashed");
    assertEquals(fs.readFileSync(path.join(ws.dst, "ok/a.txt"), "utf8"), "fine\n");
    assertEquals(fs.readFileSync(path.join(ws.dst, "ok/b.txt"), "utf8"), "fine too\n");
    for (
      const p of [
        "secret.txt",
        "pipe",
        "link-to-pipe",
        "daemon.sock",
        "loop-a",
        "zero",
        "closed/inside.txt",
      ]
    ) {
      assert(!fs.existsSync(path.join(ws.dst, p)), `${p} was published`);
    }
    const st = JSON.parse((await cli(["status", "--config", ws.config, "--json"])).stdout) as {
      failures: { file: string; error: string }[];
    };
    assertEquals(st.failures.length, 1, JSON.stringify(st.failures));
    assert(st.failures[0]!.file.endsWith("secret.txt"));
    assert(/permission denied|EACCES/i.test(st.failures[0]!.error), st.failures[0]!.error);

    // Watching: new special files appear while it runs; it keeps going.
    d = start(["sync", "--config", ws.config], { prefix: NO_DAC });
    await d.waitFor("Initial scan done");
    await mkfifo(path.join(ws.src, "ok/late-pipe"));
    fs.symlinkSync("late-loop", path.join(ws.src, "ok/late-loop"));
    write(path.join(ws.src, "ok/after.txt"), "after the special files\n");
    await until(
      () => fs.existsSync(path.join(ws.dst, "ok/after.txt")),
      10_000,
      "a normal file after them",
    );
    // The unreadable file becomes readable: it syncs at the next scan (a change of its mode).
    fs.chmodSync(path.join(ws.src, "secret.txt"), 0o644);
    await until(
      () => fs.existsSync(path.join(ws.dst, "secret.txt")),
      15_000,
      "the file once readable",
    );
    await sleep(300);
    assert(d.log().includes("late-pipe"), "late FIFO not reported");
    assertEquals(await d.stop(), 0);
    d = undefined;
  } finally {
    await d?.kill();
    socket.close();
    restore(ws);
    ws.cleanup();
  }
});
