/**
 * End-to-end tests of the core on real folders: the CLI as a subprocess,
 * the local transport in copy mode, trees compared byte for byte.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import {
  cli,
  diffTrees,
  eventually,
  localConfig,
  sleep,
  spawn,
  tree,
  workspace,
  write,
} from "../_harness.ts";
import { assert, assertEquals, assertIncludes } from "../_assert.ts";

function same(ws: { src: string; dst: string }) {
  return () => diffTrees(tree(ws.src), tree(ws.dst));
}

function populate(root: string, n: number, seed = 1) {
  let x = seed;
  const rnd = () => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let i = 0; i < n; i++) {
    write(
      path.join(root, `d${i % 10}`, `sub${i % 3}`, `f${i}.txt`),
      `file ${i} ${"x".repeat(Math.floor(rnd() * 2000))}`,
    );
  }
}

Deno.test("sync --once mirrors a tree; a restart over an unchanged tree uploads nothing", async () => {
  const ws = workspace();
  try {
    populate(ws.src, 120);
    write(path.join(ws.src, "with space/ünïcode #1.css"), "a{}");
    localConfig(ws);
    let r = await cli(["sync", "--config", ws.config, "--once"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(same(ws)(), "");
    assertIncludes(r.stderr, "121 synced");
    r = await cli(["sync", "--config", ws.config, "--once"]);
    assertEquals(r.code, 0, r.stderr);
    assertIncludes(r.stderr, "Done: 0 synced, 0 deleted, 0 failed");
    const url = await cli([
      "url",
      path.join(ws.src, "with space/ünïcode #1.css"),
      "--config",
      ws.config,
    ]);
    assertEquals(
      url.stdout.trim(),
      "local\thttp://cdn.test/with%20space/%C3%BCn%C3%AFcode%20%231.css",
    );
  } finally {
    ws.cleanup();
  }
});

Deno.test("changes made while the daemon was stopped are found at restart", async () => {
  const ws = workspace();
  try {
    populate(ws.src, 30);
    localConfig(ws);
    assertEquals((await cli(["sync", "--config", ws.config, "--once"])).code, 0);
    // Offline: create, modify (same size, same second), delete, rename, new deep dir, remove a dir.
    write(path.join(ws.src, "new/deep/er/n.txt"), "new");
    const f = path.join(ws.src, "d1/sub1/f1.txt");
    const before = fs.readFileSync(f, "utf8");
    fs.writeFileSync(f, before.replace("file 1", "FILE 1"));
    fs.rmSync(path.join(ws.src, "d2/sub2/f2.txt"));
    fs.renameSync(path.join(ws.src, "d3/sub0/f3.txt"), path.join(ws.src, "d3/renamed.txt"));
    fs.rmSync(path.join(ws.src, "d4"), { recursive: true });
    const r = await cli(["sync", "--config", ws.config, "--once"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(same(ws)(), "");
  } finally {
    ws.cleanup();
  }
});

Deno.test("watch mode syncs live creates, rewrites, deletes, renames, moves and bursts", async () => {
  const ws = workspace();
  const outside = ws.root + "/outside";
  fs.mkdirSync(outside);
  let d: ReturnType<typeof spawn> | undefined;
  try {
    // Enough files that removing the 30-file burst below stays within the delete guard's allowance.
    populate(ws.src, 80);
    localConfig(ws, { settings: { rescanInterval: "0" } });
    d = spawn(["sync", "--config", ws.config]);
    await d.waitFor("Initial scan done");
    await eventually(same(ws), 20_000, "initial sync");

    write(path.join(ws.src, "live/a.txt"), "a");
    await eventually(same(ws), 10_000, "create");
    // Same size, same second: change detection must not rely on whole-second mtimes.
    for (let i = 0; i < 5; i++) {
      fs.writeFileSync(path.join(ws.src, "live/a.txt"), String.fromCharCode(98 + i));
    }
    await eventually(same(ws), 10_000, "same-size rewrites");
    fs.renameSync(path.join(ws.src, "live/a.txt"), path.join(ws.src, "live/b.txt"));
    await eventually(same(ws), 10_000, "rename");
    write(path.join(outside, "moved-in/x/y.txt"), "moved in");
    fs.renameSync(path.join(outside, "moved-in"), path.join(ws.src, "moved-in"));
    await eventually(same(ws), 10_000, "directory moved in");
    fs.renameSync(path.join(ws.src, "d5"), path.join(outside, "d5"));
    await eventually(same(ws), 10_000, "directory moved out");
    // mkdir -p and files right away: the watcher misses many of these.
    for (let i = 0; i < 30; i++) {
      write(path.join(ws.src, `burst/a${i}/b/c/f${i}.txt`), `burst ${i}`);
    }
    await eventually(same(ws), 15_000, "mkdir -p burst");
    fs.rmSync(path.join(ws.src, "burst"), { recursive: true });
    await eventually(same(ws), 15_000, "rm -r");
    fs.rmSync(path.join(ws.src, "d6/sub0/f6.txt"));
    await eventually(same(ws), 10_000, "delete");
    assertEquals(await d.stop(), 0);
    d = undefined;
    assert(!fs.existsSync(path.join(ws.data, "daemon.pid")), "pid file removed at exit");
  } finally {
    await d?.kill();
    ws.cleanup();
  }
});

Deno.test("the delete guard holds a mass deletion until it is approved", async () => {
  const ws = workspace();
  try {
    populate(ws.src, 40);
    localConfig(ws);
    assertEquals((await cli(["sync", "--config", ws.config, "--once"])).code, 0);
    for (let i = 0; i < 10; i++) {
      fs.rmSync(path.join(ws.src, `d${i}`), { recursive: true, force: true });
    }
    write(path.join(ws.src, "kept.txt"), "still here");
    let r = await cli(["sync", "--config", ws.config, "--once"]);
    assertIncludes(r.stderr, "Delete guard");
    assertEquals(tree(ws.dst).size, 41, "nothing deleted remotely, the new file uploaded");
    const status = JSON.parse((await cli(["status", "--config", ws.config, "--json"])).stdout);
    assertEquals(status.guards[0].pending, 40);
    r = await cli(["approve-deletes", "--config", ws.config]);
    assertEquals(r.code, 0);
    r = await cli(["sync", "--config", ws.config, "--once"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(same(ws)(), "");
  } finally {
    ws.cleanup();
  }
});

Deno.test("a vanished source root deletes nothing", async () => {
  const ws = workspace();
  try {
    populate(ws.src, 5);
    localConfig(ws, { settings: { deleteGuardMinFiles: "1000" } });
    assertEquals((await cli(["sync", "--config", ws.config, "--once"])).code, 0);
    fs.renameSync(ws.src, ws.src + ".away");
    // The config refuses a missing scanPath, so point it at a symlink that now dangles.
    fs.symlinkSync(ws.src + ".gone", ws.src);
    const r = await cli(["sync", "--config", ws.config, "--once"]);
    assertEquals(r.code, 2, "a missing scanPath is a config error");
    assertEquals(tree(ws.dst).size, 5);
  } finally {
    ws.cleanup();
  }
});

Deno.test("kill -9 at random moments loses nothing; no temp files are left", async () => {
  const ws = workspace();
  try {
    populate(ws.src, 400);
    localConfig(ws, { settings: { rescanInterval: "0" } });
    let x = 7;
    const rnd = () => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648;
    for (let round = 0; round < 6; round++) {
      const d = spawn(["sync", "--config", ws.config]);
      // Change things while it runs, then kill it at a random moment.
      const ops = (async () => {
        for (let i = 0; i < 20; i++) {
          const n = Math.floor(rnd() * 400);
          const p = path.join(ws.src, `d${n % 10}`, `sub${n % 3}`, `f${n}.txt`);
          if (rnd() < 0.3) fs.rmSync(p, { force: true });
          else write(p, `round ${round} op ${i} ${"y".repeat(Math.floor(rnd() * 3000))}`);
          await sleep(rnd() * 20);
        }
      })();
      await sleep(150 + rnd() * 600);
      await d.kill();
      await ops;
    }
    const r = await cli(["sync", "--config", ws.config, "--once"]);
    assertEquals(r.code, 0, r.stderr);
    const dst = tree(ws.dst);
    assert(
      ![...dst.values()].includes("<TEMP FILE>"),
      "temp files left: " + [...dst].filter(([, v]) => v === "<TEMP FILE>").map(([k]) => k),
    );
    assertEquals(diffTrees(tree(ws.src), dst), "");
  } finally {
    ws.cleanup();
  }
});

Deno.test("churn: hundreds of random changes while watching end with identical trees", async () => {
  const ws = workspace();
  let d: ReturnType<typeof spawn> | undefined;
  try {
    localConfig(ws, { settings: { rescanInterval: "0" } });
    d = spawn(["sync", "--config", ws.config]);
    await d.waitFor("Initial scan done");
    let x = 42;
    const rnd = () => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648;
    const names = Array.from(
      { length: 60 },
      (_, i) => `c${i % 6}/${i % 4 === 0 ? "deep/er/" : ""}n${i}.txt`,
    );
    for (let i = 0; i < 500; i++) {
      const name = names[Math.floor(rnd() * names.length)]!;
      const p = path.join(ws.src, name);
      const r = rnd();
      if (r < 0.5) write(p, `v${i} ${"z".repeat(Math.floor(rnd() * 500))}`);
      else if (r < 0.7) fs.rmSync(p, { force: true });
      else if (r < 0.8) {
        const to = path.join(ws.src, names[Math.floor(rnd() * names.length)]!);
        if (fs.existsSync(p)) {
          fs.mkdirSync(path.dirname(to), { recursive: true });
          fs.renameSync(p, to);
        }
      } else if (r < 0.85) {
        fs.rmSync(path.join(ws.src, `c${Math.floor(rnd() * 6)}`), { recursive: true, force: true });
      } else if (fs.existsSync(p)) fs.appendFileSync(p, "+");
      if (i % 50 === 0) await sleep(5);
    }
    await eventually(same(ws), 30_000, "churn to settle");
    assertEquals(await d.stop(), 0);
    d = undefined;
  } finally {
    await d?.kill();
    ws.cleanup();
  }
});

Deno.test("a second instance on the same data directory refuses to start", async () => {
  const ws = workspace();
  let d: ReturnType<typeof spawn> | undefined;
  try {
    write(path.join(ws.src, "a.txt"), "a");
    localConfig(ws);
    d = spawn(["sync", "--config", ws.config]);
    await d.waitFor("Initial scan done");
    const r = await cli(["sync", "--config", ws.config, "--once"]);
    assertEquals(r.code, 1);
    assertIncludes(r.stderr, "already running");
    const status = await cli(["status", "--config", ws.config]);
    assertEquals(status.code, 0);
    assertIncludes(status.stdout, "Daemon: running");
  } finally {
    await d?.stop();
    ws.cleanup();
  }
});

Deno.test("fileDeletionDelayAfterSync deletes only its own rule's source files, not remotely", async () => {
  const ws = workspace();
  try {
    write(path.join(ws.src, "videos/a.mov"), "movie");
    write(path.join(ws.src, "css/a.css"), "a{}");
    const xml = `<?xml version="1.0"?>
<config>
  <sources><source name="site" scanPath="${ws.src}" /></sources>
  <servers><server name="local" transporter="symlink_or_copy"><location>${ws.dst}</location><url>http://cdn/</url><copy>true</copy></server></servers>
  <rules>
    <rule for="site" label="videos" fileDeletionDelayAfterSync="0">
      <filter><extensions>mov</extensions></filter>
      <destinations><destination server="local" /></destinations>
    </rule>
    <rule for="site" label="css">
      <filter><extensions>css</extensions></filter>
      <destinations><destination server="local" /></destinations>
    </rule>
  </rules>
  <settings><dataDir>${ws.data}</dataDir></settings>
</config>`;
    fs.writeFileSync(ws.config, xml);
    const r = await cli(["sync", "--config", ws.config, "--once"]);
    assertEquals(r.code, 0, r.stderr);
    assert(
      !fs.existsSync(path.join(ws.src, "videos/a.mov")),
      "the video is deleted from the source",
    );
    assert(fs.existsSync(path.join(ws.src, "css/a.css")), "other rules' files stay");
    assertEquals(
      fs.readFileSync(path.join(ws.dst, "videos/a.mov"), "utf8"),
      "movie",
      "remote copy stays",
    );
    // The deletion done by fileconveyor is not propagated on the next run.
    const again = await cli(["sync", "--config", ws.config, "--once"]);
    assertEquals(again.code, 0);
    assert(fs.existsSync(path.join(ws.dst, "videos/a.mov")));
  } finally {
    ws.cleanup();
  }
});

Deno.test("--dry-run reports and changes nothing; ignoredDirs are skipped at any depth", async () => {
  const ws = workspace();
  try {
    write(path.join(ws.src, "a.txt"), "a");
    write(path.join(ws.src, "x/.svn/pristine/b.txt"), "b");
    write(path.join(ws.src, ".svn/c.txt"), "c");
    localConfig(ws, { ignoredDirs: ".svn:CVS" });
    const dry = await cli(["sync", "--config", ws.config, "--dry-run"]);
    assertEquals(dry.code, 0, dry.stderr);
    assertIncludes(dry.stderr, 'would upload "a.txt"');
    assertEquals(tree(ws.dst).size, 0);
    const r = await cli(["sync", "--config", ws.config, "--once"]);
    assertEquals(r.code, 0);
    assertEquals([...tree(ws.dst).keys()], ["a.txt"]);
  } finally {
    ws.cleanup();
  }
});

Deno.test("validate never writes; usage errors exit 2", async () => {
  const ws = workspace();
  try {
    localConfig(ws);
    const r = await cli(["validate", "--config", ws.config]);
    assertEquals(r.code, 0, r.stderr);
    assert(!fs.existsSync(ws.data), "validate created the data directory");
    assertEquals((await cli(["sync"])).code, 2);
    assertEquals((await cli(["bogus-command"])).code, 2);
    const v = await cli(["--version"]);
    assertEquals(v.code, 0);
    assert(/^\d+\.\d+\.\d+/.test(v.stdout.trim()));
    for (const cmd of ["sync", "validate", "status", "retry", "url", "approve-deletes"]) {
      const h = await cli([cmd, "--help"]);
      assertEquals(h.code, 0, cmd);
      assertIncludes(h.stdout, "--config");
    }
  } finally {
    ws.cleanup();
  }
});

Deno.test("a file that keeps failing is reported, fails alone, exits 1 with --once, and retry re-queues it", async () => {
  const ws = workspace();
  try {
    write(path.join(ws.src, "good/a.txt"), "a");
    write(path.join(ws.src, "bad/b.txt"), "b");
    // A regular file where the destination needs a directory: uploads below it fail.
    write(path.join(ws.dst, "bad"), "in the way");
    localConfig(ws, {
      settings: { retryInitialDelay: "0.05", retryMaxDelay: "0.1", retryFailAfter: "3" },
    });
    const r = await cli(["sync", "--config", ws.config, "--once"]);
    assertEquals(r.code, 1, r.stderr);
    assertEquals(fs.readFileSync(path.join(ws.dst, "good/a.txt"), "utf8"), "a");
    const status = JSON.parse((await cli(["status", "--config", ws.config, "--json"])).stdout);
    assertEquals(status.queue.failed, 1);
    assertEquals(status.failures[0].file, path.join(ws.src, "bad/b.txt"));
    assertIncludes(status.failures[0].error, 'Cannot upload "bad/b.txt" to server "local"');
    const text = (await cli(["status", "--config", ws.config])).stdout;
    assertIncludes(text, "[failed]");
    fs.rmSync(path.join(ws.dst, "bad"));
    assertIncludes((await cli(["retry", "--config", ws.config])).stdout, "Re-queued 1 file(s)");
    const again = await cli(["sync", "--config", ws.config, "--once"]);
    assertEquals(again.code, 0, again.stderr);
    assertEquals(fs.readFileSync(path.join(ws.dst, "bad/b.txt"), "utf8"), "b");
  } finally {
    ws.cleanup();
  }
});

Deno.test("a rename inside the tree is a server-side move, not a re-upload", async () => {
  const ws = workspace();
  let d: ReturnType<typeof spawn> | undefined;
  try {
    write(path.join(ws.src, "a/big.bin"), "x".repeat(100_000));
    localConfig(ws, { settings: { rescanInterval: "0" } });
    d = spawn(["sync", "--config", ws.config]);
    await d.waitFor("Initial scan done");
    await eventually(same(ws), 10_000, "initial sync");
    fs.mkdirSync(path.join(ws.src, "b"));
    fs.renameSync(path.join(ws.src, "a/big.bin"), path.join(ws.src, "b/moved.bin"));
    await eventually(same(ws), 10_000, "rename");
    await d.waitFor('moved "a/big.bin" to "b/moved.bin"');
  } finally {
    await d?.stop();
    ws.cleanup();
  }
});

Deno.test("renaming a symlinked (unprocessed) file re-links it instead of moving a stale link", async () => {
  const ws = workspace();
  let d: ReturnType<typeof spawn> | undefined;
  try {
    write(path.join(ws.src, "a.txt"), "linked");
    localConfig(ws, { copy: false, settings: { rescanInterval: "0" } });
    d = spawn(["sync", "--config", ws.config]);
    await d.waitFor("Initial scan done");
    await eventually(
      () => fs.existsSync(path.join(ws.dst, "a.txt")) ? "" : "missing",
      10_000,
      "sync",
    );
    assert(fs.lstatSync(path.join(ws.dst, "a.txt")).isSymbolicLink());
    fs.renameSync(path.join(ws.src, "a.txt"), path.join(ws.src, "b.txt"));
    await eventually(same(ws), 10_000, "rename");
    assertEquals(fs.readlinkSync(path.join(ws.dst, "b.txt")), path.join(ws.src, "b.txt"));
  } finally {
    await d?.stop();
    ws.cleanup();
  }
});
