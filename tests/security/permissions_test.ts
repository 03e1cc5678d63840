/**
 * The data directory and everything in it (database, WAL, lock, pid file,
 * working directory, per-server state) are private — 0700 directories and
 * 0600 files — even under `umask 000`, and a data directory that already
 * exists with lax permissions is tightened.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals } from "../_assert.ts";
import { localConfig, workspace, write } from "../_harness.ts";
import { ENTRY } from "../_harness.ts";
import { start, until } from "../reliability/_util.ts";

function modes(root: string): Map<string, number> {
  const out = new Map<string, number>([[".", fs.statSync(root).mode & 0o777]]);
  for (const f of fs.readdirSync(root, { recursive: true })) {
    const p = path.join(root, String(f));
    const st = fs.lstatSync(p);
    if (!st.isSymbolicLink()) out.set(String(f), st.mode & 0o777);
  }
  return out;
}

/** Files other users could read or write, and top-level directories they could enter. */
function lax(root: string): string[] {
  const out: string[] = [];
  for (const [f, mode] of modes(root)) {
    const dir = fs.statSync(path.join(root, f)).isDirectory();
    // Directories below a 0700 directory cannot be reached by anyone else: only the top counts.
    if (dir && f !== "." && !["work", "servers"].includes(f)) continue;
    if ((mode & 0o077) !== 0) out.push(`${f} ${mode.toString(8)}`);
  }
  return out;
}

/** The CLI under `umask 000`: nothing may rely on the caller's umask. */
const UMASK_000 = ["sh", "-c", 'umask 000; exec "$@"', "sh"];

Deno.test("the data directory and database are created private (0700/0600), even with umask 000", async () => {
  const ws = workspace("fc-perms-");
  try {
    write(path.join(ws.src, "a.txt"), "a\n");
    localConfig(ws, {
      settings: {
        logFile: path.join(ws.root, "logs", "fileconveyor.log"),
        pidFile: path.join(ws.root, "run", "fc.pid"),
      },
      ruleBody:
        `<processorChain><processor name="command" shell="true" command="sleep 2; cat {in}" /></processorChain>`,
    });
    const d = start(["sync", "--config", ws.config], { prefix: UMASK_000 });
    try {
      await d.waitFor("Initial scan done");
      // While it runs (a processor is busy): WAL, shm, lock, pid, working files exist.
      await until(
        () => fs.existsSync(path.join(ws.data, "fileconveyor.db-wal")),
        10_000,
        "the WAL",
      );
      await until(
        () => fs.readdirSync(path.join(ws.data, "work")).length > 0,
        10_000,
        "a job in the working directory",
      );
      const running = modes(ws.data);
      for (
        const f of [
          "fileconveyor.db",
          "fileconveyor.db-wal",
          "fileconveyor.db-shm",
          "lock",
          "daemon.pid",
        ]
      ) {
        assert(running.has(f), `${f} missing: ${[...running.keys()].join(", ")}`);
      }
      assertEquals(running.get(".")!, 0o700);
      assertEquals(running.get("fileconveyor.db")!, 0o600);
      assertEquals(lax(ws.data), [], "files other users can read");
      // The pid file (outside the data directory): private, in a directory nobody else can write.
      assertEquals(fs.statSync(path.join(ws.root, "run/fc.pid")).mode & 0o777, 0o600);
      assertEquals(
        fs.statSync(path.join(ws.root, "run")).mode & 0o022,
        0,
        "pid directory writable by others",
      );
      assertEquals(fs.statSync(path.join(ws.root, "logs/fileconveyor.log")).mode & 0o777, 0o600);
      await until(() => fs.existsSync(path.join(ws.dst, "a.txt")), 15_000, "the sync");
    } finally {
      await d.stop();
    }
    assertEquals(lax(ws.data), [], "after shutdown");
  } finally {
    ws.cleanup();
  }
});

Deno.test("an existing data directory with lax permissions is made private", async () => {
  const ws = workspace("fc-perms-");
  try {
    write(path.join(ws.src, "a.txt"), "a\n");
    fs.mkdirSync(ws.data, { mode: 0o777 });
    fs.chmodSync(ws.data, 0o777);
    localConfig(ws);
    const out = await new Deno.Command(UMASK_000[0]!, {
      args: [
        ...UMASK_000.slice(1),
        Deno.execPath(),
        "run",
        "-A",
        ENTRY,
        "sync",
        "--once",
        "--config",
        ws.config,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
    assertEquals(fs.statSync(ws.data).mode & 0o777, 0o700);
    assertEquals(lax(ws.data), []);
  } finally {
    ws.cleanup();
  }
});
