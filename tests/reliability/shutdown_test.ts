/**
 * SIGTERM ends the process within the documented bound — 10 s for running
 * transfers plus 5 s of clean-up — whatever the disk, the servers or the
 * watcher do at that moment: a full data disk, a server that accepts
 * connections and never answers, a watcher flooded with events next to a
 * named pipe. The state database stays intact.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals } from "../_assert.ts";
import { localConfig, sleep, type Workspace, workspace, write } from "../_harness.ts";
import { blackHoleServer } from "../_blackhole.ts";
import { sftpRemote } from "./_remote.ts";
import { fill, integrityCheck, mountTmpfs, type Proc, sh, start, unmount } from "./_util.ts";

/** The documented bound (README, "Signals") and a margin for a loaded test machine. */
const BOUND_MS = 15_000 + 3_000;

function config(ws: Workspace, servers = "", destinations = "") {
  localConfig(ws, {
    servers,
    destinations,
    settings: { retryInitialDelay: "0.2", retryMaxDelay: "1", timeout: "120" },
  });
}

/** SIGTERM; returns the exit code and how long the process took to end. */
async function terminate(
  d: Proc,
): Promise<{ code: number | "hung"; ms: number; threads: string }> {
  const t0 = Date.now();
  d.child.kill("SIGTERM");
  const code = await Promise.race([
    d.exited,
    sleep(BOUND_MS + 10_000).then(() => "hung" as const),
  ]);
  const ms = Date.now() - t0;
  let hung = "";
  if (code === "hung") {
    hung = `still running; its threads:\n${threads(d.pid)}\n`;
    await d.kill();
  }
  return { code, ms, threads: hung };
}

/** Name, kernel wait channel and system call of each thread of `pid` (for a hung process). */
function threads(pid: number): string {
  const out: string[] = [];
  for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
    const read = (f: string) => {
      try {
        return fs.readFileSync(`/proc/${pid}/task/${t}/${f}`, "utf8").trim();
      } catch {
        return "?";
      }
    };
    out.push(`${t} ${read("comm")} ${read("wchan")} ${read("syscall").split(" ")[0]}`);
  }
  return out.join("\n");
}

function populate(src: string, n: number, tag = "f") {
  for (let i = 0; i < n; i++) {
    write(path.join(src, `d${i % 10}`, `${tag}${i}.txt`), `${tag} ${i}\n`);
  }
}

Deno.test("shutdown: SIGTERM while the data disk is full ends the process in time, cleanly", async () => {
  const ws = workspace("fc-stop-full-");
  await mountTmpfs(ws.data, "8m");
  let d: Proc | undefined;
  try {
    populate(ws.src, 100);
    config(ws);
    d = start(["sync", "--config", ws.config]);
    await d.waitFor("Initial scan done");
    const ballast = fill(ws.data);
    populate(ws.src, 200, "g");
    await d.waitFor(/disk is full|No space left/i, 20_000);
    const r = await terminate(d);
    assert(r.ms < BOUND_MS, `took ${r.ms} ms to stop:\n${r.threads}${d.log().slice(-2000)}`);
    assertEquals(r.code, 0, `not a clean stop:\n${d.log().slice(-2000)}`);
    d = undefined;
    fs.rmSync(ballast);
    assertEquals(await integrityCheck(path.join(ws.data, "fileconveyor.db")), "ok");
  } finally {
    await d?.kill();
    await unmount(ws.data).catch(() => {});
    ws.cleanup();
  }
});

Deno.test("shutdown: SIGTERM while a server accepts connections and never answers", async () => {
  const ws = workspace("fc-stop-hole-");
  const hole = blackHoleServer();
  const remote = await sftpRemote();
  let d: Proc | undefined;
  try {
    populate(ws.src, 30);
    config(ws, remote.serverXml("remote", { port: hole.port }), `<destination server="remote" />`);
    d = start(["sync", "--config", ws.config]);
    await d.waitFor("Initial scan done");
    // Transfers to the black hole are under way (connecting, then waiting for an answer).
    const t0 = Date.now();
    while (hole.accepted() === 0 && Date.now() - t0 < 20_000) await sleep(50);
    assert(hole.accepted() > 0, "nothing connected to the black hole");
    await sleep(500);
    const r = await terminate(d);
    assert(r.ms < BOUND_MS, `took ${r.ms} ms to stop:\n${r.threads}${d.log().slice(-2000)}`);
    assertEquals(r.code, 0, `not a clean stop:\n${d.log().slice(-2000)}`);
    d = undefined;
    assertEquals(await integrityCheck(path.join(ws.data, "fileconveyor.db")), "ok");
  } finally {
    await d?.kill();
    hole.close();
    await remote.cleanup();
    ws.cleanup();
  }
});

Deno.test("shutdown: SIGTERM while the watcher is flooded next to a named pipe", async () => {
  const ws = workspace("fc-stop-busy-");
  let d: Proc | undefined;
  let writing = true;
  try {
    populate(ws.src, 50);
    await sh("mkfifo", [path.join(ws.src, "d0", "pipe")]);
    config(ws);
    d = start(["sync", "--config", ws.config]);
    await d.waitFor("Initial scan done");
    // A flood of creates and rewrites that does not stop for the signal.
    const flood = (async () => {
      let n = 0;
      while (writing) {
        for (let i = 0; i < 50; i++, n++) {
          write(path.join(ws.src, `flood${n % 40}`, `n${n % 2000}.txt`), `${n}\n`);
        }
        await sleep(1);
      }
    })();
    await sleep(1500);
    await sh("mkfifo", [path.join(ws.src, "flood1", "pipe2")]);
    await sleep(500);
    const r = await terminate(d);
    writing = false;
    await flood;
    assert(r.ms < BOUND_MS, `took ${r.ms} ms to stop:\n${r.threads}${d.log().slice(-2000)}`);
    assertEquals(r.code, 0, `not a clean stop:\n${d.log().slice(-2000)}`);
    d = undefined;
    assertEquals(await integrityCheck(path.join(ws.data, "fileconveyor.db")), "ok");
  } finally {
    writing = false;
    await d?.kill();
    ws.cleanup();
  }
});
