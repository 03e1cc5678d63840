/**
 * A named pipe appearing in a watched tree. Deno's native watcher opens the
 * path of every event it reports (to match it against the watched roots); on
 * a FIFO that open blocks until a writer comes, and the watcher thread (one
 * per process) delivers nothing more. The daemon must notice, keep syncing
 * (by polling), never open the FIFO itself, and still stop on SIGTERM.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals } from "../_assert.ts";
import { localConfig, sleep, spawn, workspace, write } from "../_harness.ts";
import { until } from "./_util.ts";

async function mkfifo(p: string) {
  const r = await new Deno.Command("mkfifo", { args: [p] }).output();
  assertEquals(r.code, 0, "mkfifo");
}

Deno.test("hostile tree: a FIFO created in a watched tree neither stalls syncing nor SIGTERM", async () => {
  const ws = workspace("fc-fifo-");
  // No periodic rescan: only the watcher (or its fallback) can find later changes.
  localConfig(ws, { settings: { rescanInterval: "0", pollInterval: "1" } });
  write(path.join(ws.src, "a.txt"), "a\n");
  const d = spawn(["sync", "--config", ws.config]);
  try {
    await d.waitFor("Initial scan done");
    await until(() => fs.existsSync(path.join(ws.dst, "a.txt")), 10_000, "a.txt");
    await mkfifo(path.join(ws.src, "pipe"));
    fs.mkdirSync(path.join(ws.src, "sub"));
    await mkfifo(path.join(ws.src, "sub", "pipe2"));
    await sleep(200);
    write(path.join(ws.src, "b.txt"), "after the pipe\n");
    write(path.join(ws.src, "sub", "c.txt"), "beside the pipe\n");
    await until(
      () =>
        fs.existsSync(path.join(ws.dst, "b.txt")) && fs.existsSync(path.join(ws.dst, "sub/c.txt")),
      20_000,
      "files written after the FIFO appeared",
    );
    assertEquals(fs.readFileSync(path.join(ws.dst, "b.txt"), "utf8"), "after the pipe\n");
    assert(!fs.existsSync(path.join(ws.dst, "pipe")), "the FIFO was published");
    await until(() => /pipe[^\n]*not a regular file/.test(d.log()), 5_000, "the FIFO reported");
    const t0 = Date.now();
    const code = await Promise.race([d.stop(), sleep(20_000).then(() => -1)]);
    assertEquals(
      code,
      0,
      `SIGTERM did not stop the daemon (${Date.now() - t0} ms):\n${d.log().slice(-3000)}`,
    );
  } finally {
    await d.kill();
    ws.cleanup();
  }
});

Deno.test("hostile tree: a FIFO created and removed at once (its blocked reader cannot be freed) neither stalls syncing nor SIGTERM", async () => {
  // Deno's watcher thread may be left waiting on a pipe nobody can open any more: the daemon
  // must go on (polling) and still stop on SIGTERM. In-process tests cannot show this: the
  // thread is the process's, shared by every watcher in it.
  const ws = workspace("fc-fifo-gone-");
  localConfig(ws, { settings: { rescanInterval: "0", pollInterval: "1" } });
  write(path.join(ws.src, "a.txt"), "a\n");
  const d = spawn(["sync", "--config", ws.config]);
  try {
    await d.waitFor("Initial scan done");
    await until(() => fs.existsSync(path.join(ws.dst, "a.txt")), 10_000, "a.txt");
    for (let i = 0; i < 5; i++) {
      const p = path.join(ws.src, `pipe${i}`);
      await mkfifo(p);
      fs.rmSync(p);
    }
    await sleep(200);
    write(path.join(ws.src, "b.txt"), "after the pipes\n");
    await until(() => fs.existsSync(path.join(ws.dst, "b.txt")), 20_000, "a file written after");
    assertEquals(fs.readFileSync(path.join(ws.dst, "b.txt"), "utf8"), "after the pipes\n");
    const t0 = Date.now();
    const code = await Promise.race([d.stop(), sleep(20_000).then(() => -1)]);
    assertEquals(
      code,
      0,
      `SIGTERM did not stop the daemon (${Date.now() - t0} ms):\n${d.log().slice(-3000)}`,
    );
  } finally {
    await d.kill();
    ws.cleanup();
  }
});
