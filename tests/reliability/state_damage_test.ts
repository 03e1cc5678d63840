/**
 * A damaged state database: deleted while the daemon runs, or overwritten
 * with garbage. fileconveyor must stop loudly (exit 1, naming the file and
 * the fix), never carry on from a wrong state, and `sync --rebuild-state`
 * must bring the destination back to the source (including files the source
 * lost while the state was missing).
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals } from "../_assert.ts";
import { cli, localConfig, spawn, workspace, write } from "../_harness.ts";
import { diffR, until } from "./_util.ts";

const DB = "fileconveyor.db";

function populate(src: string, n: number) {
  for (let i = 0; i < n; i++) write(path.join(src, `d${i % 3}`, `f${i}.txt`), `file ${i}\n`);
}

/** Writes garbage over the pages of the database after its header page. */
function corrupt(file: string) {
  const size = fs.statSync(file).size;
  assert(size > 4096 * 2, `the database is too small to damage (${size} bytes)`);
  const fd = fs.openSync(file, "r+");
  try {
    const junk = new TextEncoder().encode("garbage!".repeat(512));
    for (let off = 4096; off < size; off += 4096) fs.writeSync(fd, junk, 0, 4096, off);
  } finally {
    fs.closeSync(fd);
  }
}

/** Syncs once and folds the WAL into the database file, so the file holds the state. */
async function syncedState(config: string) {
  const r = await cli(["sync", "--once", "--config", config]);
  assertEquals(r.code, 0, r.stderr);
}

Deno.test("state: the database deleted while the daemon runs stops it loudly; rebuild converges", async () => {
  const ws = workspace("fc-state-del-");
  try {
    populate(ws.src, 12);
    const config = localConfig(ws);
    const d = spawn(["sync", "--config", config]);
    await d.waitFor("Initial scan done");
    await until(async () => (await diffR(ws.src, ws.dst)) === "", 20_000, "first sync");
    for (const ext of ["", "-wal", "-shm"]) {
      fs.rmSync(path.join(ws.data, DB + ext), { force: true });
    }
    const code = await Promise.race([
      d.child.status.then((s) => s.code),
      new Promise<string>((r) => setTimeout(() => r("still running"), 15_000)),
    ]);
    if (code === "still running") await d.kill();
    assertEquals(code, 1, `the daemon carried on without its database:\n${d.log().slice(-2000)}`);
    assert(/was deleted while fileconveyor ran/.test(d.log()), d.log().slice(-2000));
    assert(d.log().includes(path.join(ws.data, DB)), "the message does not name the file");
    assert(d.log().includes("--rebuild-state"), "the message does not say how to recover");

    // While it is down a source file goes away: only the lost state knew it was synced.
    fs.rmSync(path.join(ws.src, "d0", "f0.txt"));
    // status and a plain restart say the state was lost; they do not pass for a first run.
    const st = await cli(["status", "--config", config]);
    assertEquals(st.code, 1, st.stdout + st.stderr);
    assert(/is missing \(it was deleted\)/.test(st.stderr), st.stderr);
    assert(!/has not run/.test(st.stderr), st.stderr);
    const again = await cli(["sync", "--once", "--config", config]);
    assertEquals(again.code, 1, again.stderr);
    assert(again.stderr.includes("--rebuild-state"), again.stderr);
    assert(fs.existsSync(path.join(ws.dst, "d0", "f0.txt")), "nothing may change before a rebuild");

    const rebuilt = await cli(["sync", "--once", "--rebuild-state", "--config", config]);
    assertEquals(rebuilt.code, 0, rebuilt.stderr);
    assertEquals(await diffR(ws.src, ws.dst), "", "the destination keeps what the source lost");
    const after = await cli(["status", "--config", config]);
    assertEquals(after.code, 0, after.stderr);
    assert(/State: rebuilt .*the old database was lost/.test(after.stdout), after.stdout);
    const v = await cli(["verify", "--config", config]);
    assertEquals(v.code, 0, v.stdout + v.stderr);
  } finally {
    ws.cleanup();
  }
});

Deno.test("state: a corrupted database is refused at start with the fix; rebuild recovers", async () => {
  const ws = workspace("fc-state-bad-");
  try {
    populate(ws.src, 300);
    const config = localConfig(ws);
    await syncedState(config);
    const db = path.join(ws.data, DB);
    corrupt(db);
    write(path.join(ws.src, "new.txt"), "new\n");

    for (const args of [["sync", "--once"], ["sync"]]) {
      const r = await cli([...args, "--config", config]);
      assertEquals(r.code, 1, `${args.join(" ")}: ${r.stderr.slice(-2000)}`);
      assert(r.stderr.includes(`"${db}" is damaged`), r.stderr.slice(-2000));
      assert(r.stderr.includes("--rebuild-state"), r.stderr.slice(-2000));
      assert(!/free some space|disk is full/i.test(r.stderr), r.stderr.slice(-2000));
      assert(!/can be written again/.test(r.stderr), r.stderr.slice(-2000));
    }
    assert(!fs.existsSync(path.join(ws.dst, "new.txt")), "synced from a damaged state");

    const rebuilt = await cli(["sync", "--once", "--rebuild-state", "--config", config]);
    assertEquals(rebuilt.code, 0, rebuilt.stderr);
    assertEquals(await diffR(ws.src, ws.dst), "");
    const kept = fs.readdirSync(ws.data).filter((f) =>
      f.startsWith(`${DB}.old-`) && !f.endsWith("-wal")
    );
    assertEquals(kept.length, 1, `the damaged database is not kept: ${fs.readdirSync(ws.data)}`);
    const st = await cli(["status", "--config", config]);
    assert(
      st.stdout.includes(`the old database is kept at "${path.join(ws.data, kept[0]!)}"`),
      st.stdout,
    );
  } finally {
    ws.cleanup();
  }
});

Deno.test("state: a database damaged under a watching daemon stops it (exit 1), no retry loop", async () => {
  const ws = workspace("fc-state-live-");
  try {
    populate(ws.src, 300);
    const config = localConfig(ws, { settings: { rescanInterval: "1" } });
    await syncedState(config);
    const d = spawn(["sync", "--config", config]);
    await d.waitFor("Initial scan done");
    corrupt(path.join(ws.data, DB));
    // New work makes the daemon read pages it has not cached.
    for (let i = 0; i < 50; i++) write(path.join(ws.src, `late${i}`, `n${i}.txt`), `late ${i}\n`);
    const code = await Promise.race([
      d.child.status.then((s) => s.code),
      new Promise<string>((r) => setTimeout(() => r("still running"), 20_000)),
    ]);
    if (code === "still running") await d.kill();
    const log = d.log();
    assertEquals(code, 1, `the daemon carried on with a damaged database:\n${log.slice(-2000)}`);
    assert(/is damaged/.test(log), log.slice(-2000));
    assert(!/can be written again/.test(log), `a retry loop:\n${log.slice(-2000)}`);
    assert(!/free some space/.test(log), log.slice(-2000));
  } finally {
    ws.cleanup();
  }
});
