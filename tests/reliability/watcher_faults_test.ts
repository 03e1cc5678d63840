/**
 * Watcher faults: the inotify watch limit exhausted (at start and later),
 * the kernel event queue overflowing, and the source directory deleted or
 * unmounted under a running daemon.
 *
 * The watch limit is lowered in a private user namespace
 * (`/proc/sys/user/max_inotify_watches`, the per-namespace form of
 * `fs.inotify.max_user_watches`, checked by the same kernel code): lowering
 * the machine-wide sysctl would break every other watcher of the user —
 * other test files run in parallel, other people's daemons — for the whole
 * test. The event queue size (`fs.inotify.max_queued_events`) has no
 * per-namespace form; it is read when an inotify instance is created, so it
 * is lowered only until the daemon's watcher exists and restored at once.
 * When a limit cannot be set the test fails and says why; it never skips.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { cli, localConfig, sleep, type Workspace, workspace, write } from "../_harness.ts";
import { diffR, figure, mountTmpfs, type Proc, start, unmount, until } from "./_util.ts";

function config(ws: Workspace, settings: Record<string, string> = {}) {
  localConfig(ws, { settings });
}

/** Runs the daemon in a user namespace whose inotify watch limit is `limit`. */
function startWithWatchLimit(ws: Workspace, limit: number): Proc {
  const script = 'echo "$FC_WATCH_LIMIT" > /proc/sys/user/max_inotify_watches || ' +
    '{ echo "FC-TEST: cannot write /proc/sys/user/max_inotify_watches in a user namespace" >&2; exit 97; }; ' +
    'exec "$@"';
  return start(["sync", "--config", ws.config], {
    prefix: ["unshare", "--user", "--map-root-user", "sh", "-c", script, "sh"],
    env: { FC_WATCH_LIMIT: String(limit) },
  });
}

async function status(ws: Workspace) {
  const r = await cli(["status", "--config", ws.config, "--json"]);
  return JSON.parse(r.stdout) as {
    daemon: { running: boolean; watchers: Record<string, string> };
    guards: { source: string; pending: number }[];
  };
}

async function synced(ws: Workspace, timeoutMs: number, what: string) {
  await until(async () => (await diffR(ws.src, ws.dst)) === "", timeoutMs, what, 200);
}

function dirs(root: string, n: number, filesEach: number, tag = "x") {
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < filesEach; k++) {
      write(path.join(root, `${tag}${i}`, `f${k}.txt`), `${tag} ${i} ${k}\n`);
    }
  }
}

async function exitedEarly(d: Proc): Promise<void> {
  const code = await Promise.race([d.exited, sleep(300).then(() => undefined)]);
  if (code === 97 || d.log().includes("FC-TEST: cannot write")) {
    throw new Error(
      "Cannot lower the inotify watch limit: writing /proc/sys/user/max_inotify_watches inside " +
        "`unshare --user --map-root-user` failed (user namespaces disabled?). This test needs it.",
    );
  }
}

Deno.test("watcher: the watch limit exhausted at start falls back to polling, loudly; changes still sync", async () => {
  const ws = workspace("fc-watchlimit-");
  dirs(ws.src, 30, 2);
  config(ws, { pollInterval: "0.5" });
  const d = startWithWatchLimit(ws, 10);
  try {
    await exitedEarly(d);
    await d.waitFor("file watch limit is reached");
    assertIncludes(d.log(), "Falling back to polling");
    assertIncludes(d.log(), "max_user_watches");
    await synced(ws, 20_000, "initial sync");
    assertEquals((await status(ws)).daemon.watchers.site, "polling");
    const t0 = Date.now();
    write(path.join(ws.src, "x3/new.txt"), "created while polling");
    fs.appendFileSync(path.join(ws.src, "x7/f1.txt"), "changed while polling\n");
    fs.rmSync(path.join(ws.src, "x9/f0.txt"));
    await synced(ws, 10_000, "changes while polling");
    figure("watcher.watchLimitAtStart.pollLatencyMs", Date.now() - t0);
  } finally {
    await d.stop();
    ws.cleanup();
  }
});

Deno.test("watcher: the watch limit hit later by new directories switches to polling; nothing is missed", async () => {
  const ws = workspace("fc-watchlimit2-");
  dirs(ws.src, 3, 2);
  config(ws, { pollInterval: "0.5" });
  const d = startWithWatchLimit(ws, 12);
  try {
    await exitedEarly(d);
    await d.waitFor("watch mode: native");
    await synced(ws, 20_000, "initial sync");
    // 20 new directories with files: the watcher cannot watch them all.
    dirs(ws.src, 20, 3, "late");
    await d.waitFor("hit the OS file watch limit");
    await synced(ws, 20_000, "files in directories beyond the limit");
    assertEquals((await status(ws)).daemon.watchers.site, "polling");
    write(path.join(ws.src, "late19/after.txt"), "after the switch");
    await synced(ws, 10_000, "a change after the switch");
  } finally {
    await d.stop();
    ws.cleanup();
  }
});

Deno.test("watcher: a kernel event-queue overflow loses nothing (reconciliation finds every file)", async () => {
  const file = "/proc/sys/fs/inotify/max_queued_events";
  const ws = workspace("fc-overflow-");
  config(ws, { rescanInterval: "3" });
  write(path.join(ws.src, "seed.txt"), "seed");
  let original: string;
  try {
    original = fs.readFileSync(file, "utf8").trim();
    fs.writeFileSync(file, "16");
  } catch (e) {
    ws.cleanup();
    throw new Error(`Cannot lower ${file} (needs root): ${(e as Error).message}`);
  }
  let d: Proc | undefined;
  try {
    try {
      d = start(["sync", "--config", ws.config]);
      await d.waitFor("watch mode: native");
      await d.waitFor("Initial scan done");
    } finally {
      // The daemon's inotify instance has its 16-event queue now; nobody else should get one.
      fs.writeFileSync(file, original);
    }
    assertEquals(fs.readFileSync(file, "utf8").trim(), original);
    // Flood: far more events than the queue holds.
    const n = 3000;
    for (let i = 0; i < n; i++) {
      fs.writeFileSync(path.join(ws.src, `flood${i}.txt`), `flood ${i}\n`);
    }
    for (let i = 0; i < 20; i++) write(path.join(ws.src, `sub${i}`, "deep/x.txt"), `sub ${i}\n`);
    await sleep(1000);
    const early = fs.readdirSync(ws.dst).filter((f) => f.startsWith("flood")).length;
    await synced(ws, 30_000, "every flooded file");
    figure("watcher.queueOverflow", {
      files: n,
      syncedBeforeReconciliation: early,
      rescanFlagSeen: d.log().includes("lost events"),
    });
  } finally {
    await d?.stop();
    ws.cleanup();
  }
});

Deno.test("watcher: an unmounted source (tmpfs) deletes nothing remotely; the guard holds until it is back", async () => {
  const ws = workspace("fc-unmount-");
  await mountTmpfs(ws.src, "8m");
  let mounted = true;
  const d = (() => {
    dirs(ws.src, 6, 8);
    config(ws, { rescanInterval: "1", settleDelay: "300" });
    return start(["sync", "--config", ws.config]);
  })();
  try {
    await synced(ws, 20_000, "initial sync");
    const before = await diffR(ws.dst, ws.dst);
    assertEquals(before, "");
    // A file being written when the mount goes away (busy: a lazy unmount): its pending
    // change then finds the file gone, which must not become a remote delete.
    const busy = Deno.openSync(path.join(ws.src, "x1/f1.txt"), { append: true });
    busy.writeSync(new TextEncoder().encode("still writing\n"));
    await unmount(ws.src);
    mounted = false;
    await sleep(500);
    busy.close();
    await d.waitFor("Delete guard", 15_000);
    await sleep(2000);
    const left = fs.readdirSync(ws.dst, { recursive: true }).filter((f) =>
      String(f).endsWith(".txt")
    );
    assertEquals(left.length, 48, "files deleted remotely after the unmount");
    const st = await status(ws);
    // The busy file's deletion was found by its own event, the rest by the scan the guard holds.
    assert((st.guards[0]?.pending ?? 0) >= 47, JSON.stringify(st.guards));
    // Back: the same files (new inodes) are found again; nothing is lost.
    await mountTmpfs(ws.src, "8m");
    mounted = true;
    dirs(ws.src, 6, 8);
    await synced(ws, 30_000, "after the remount");
  } finally {
    await d.stop();
    if (mounted) await unmount(ws.src).catch(() => {});
    ws.cleanup();
  }
});

Deno.test("watcher: a source directory deleted under the daemon deletes nothing remotely", async () => {
  const ws = workspace("fc-rmrf-");
  dirs(ws.src, 10, 30);
  config(ws, { rescanInterval: "1" });
  const d = start(["sync", "--config", ws.config]);
  try {
    await synced(ws, 30_000, "initial sync");
    fs.rmSync(ws.src, { recursive: true, force: true });
    await d.waitFor(/missing/, 15_000);
    await sleep(3000);
    const left = fs.readdirSync(ws.dst, { recursive: true }).filter((f) =>
      String(f).endsWith(".txt")
    );
    assertEquals(left.length, 300, `${300 - left.length} files deleted remotely`);
    // Back with the same content: in sync again, nothing re-deleted.
    dirs(ws.src, 10, 30);
    await synced(ws, 30_000, "after the source is back");
    assert(!/deleted x\d/.test(d.log()), "a remote file was deleted");
  } finally {
    await d.stop();
    ws.cleanup();
  }
});

Deno.test("watcher: a source mounted after the daemon started syncs, and its deletions are not held", async () => {
  const ws = workspace("fc-latemount-");
  let mounted = false;
  config(ws, { rescanInterval: "1", deleteGuardMinFiles: "100" });
  // Started on the empty mount point (boot order: the daemon before the file system).
  const d = start(["sync", "--config", ws.config]);
  try {
    await d.waitFor("Initial scan done");
    await mountTmpfs(ws.src, "8m");
    mounted = true;
    dirs(ws.src, 3, 4);
    await synced(ws, 20_000, "the mounted files");
    fs.rmSync(path.join(ws.src, "x1/f2.txt"));
    await until(() => !fs.existsSync(path.join(ws.dst, "x1/f2.txt")), 15_000, "the deletion");
    assertEquals(await diffR(ws.src, ws.dst), "");
  } finally {
    await d.stop();
    if (mounted) await unmount(ws.src).catch(() => {});
    ws.cleanup();
  }
});
