/**
 * Unreadable parts of a tree fail alone: the rest syncs, each unreadable
 * path shows in `status` with its reason, `--once` exits 1, and once the
 * permissions are fixed the files sync by themselves (watch mode, no
 * restart). The daemon runs without root's permission override (`NO_DAC`).
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { cli, localConfig, workspace, write } from "../_harness.ts";
import { NO_DAC, type Proc, run, start, until } from "./_util.ts";

Deno.test("hostile tree: unreadable and unsearchable directories fail alone, show in status, and sync once fixed", async () => {
  const ws = workspace("fc-unreadable-");
  localConfig(ws, { settings: { rescanInterval: "0" } });
  write(path.join(ws.src, "ok/a.txt"), "a\n");
  write(path.join(ws.src, "closed/c1.txt"), "closed\n");
  write(path.join(ws.src, "noexec/n1.txt"), "noexec\n");
  write(path.join(ws.src, "z.txt"), "z\n");
  fs.chmodSync(path.join(ws.src, "closed"), 0o000);
  fs.chmodSync(path.join(ws.src, "noexec"), 0o644);
  let d: Proc | undefined;
  try {
    const once = await run(["sync", "--once", "--config", ws.config], {
      prefix: NO_DAC,
      timeoutMs: 60_000,
    });
    assertEquals(once.code, 1, `--once must fail: ${once.stderr.slice(-3000)}`);
    assert(!/Scan failed/.test(once.stderr), once.stderr.slice(-3000));
    assertEquals(fs.readFileSync(path.join(ws.dst, "ok/a.txt"), "utf8"), "a\n");
    assertEquals(fs.readFileSync(path.join(ws.dst, "z.txt"), "utf8"), "z\n");
    assert(!fs.existsSync(path.join(ws.dst, "closed/c1.txt")));

    const json = JSON.parse((await cli(["status", "--config", ws.config, "--json"])).stdout) as {
      problems: { path: string; reason: string }[];
    };
    const byPath = new Map(json.problems.map((p) => [path.relative(ws.src, p.path), p.reason]));
    assertEquals([...byPath.keys()].sort(), ["closed", "noexec"], JSON.stringify(json.problems));
    assert(/permission denied/i.test(byPath.get("closed")!), byPath.get("closed"));
    assert(/permission denied/i.test(byPath.get("noexec")!), byPath.get("noexec"));
    const text = (await cli(["status", "--config", ws.config])).stdout;
    assertIncludes(text, "Cannot sync (2)");
    assertIncludes(text, path.join(ws.src, "closed"));

    // Watching: fixing the permissions syncs the files without a restart.
    d = start(["sync", "--config", ws.config], { prefix: NO_DAC });
    await d.waitFor("Initial scan done");
    // One unreadable directory does not cost the rest of the tree its native watching.
    const running = JSON.parse((await cli(["status", "--config", ws.config, "--json"])).stdout);
    assertEquals(running.daemon.watchers, { site: "native" }, d.log().slice(-3000));
    write(path.join(ws.src, "ok/b.txt"), "b\n");
    await until(() => fs.existsSync(path.join(ws.dst, "ok/b.txt")), 10_000, "a change beside them");
    fs.chmodSync(path.join(ws.src, "closed"), 0o755);
    fs.chmodSync(path.join(ws.src, "noexec"), 0o755);
    await until(
      () =>
        fs.existsSync(path.join(ws.dst, "closed/c1.txt")) &&
        fs.existsSync(path.join(ws.dst, "noexec/n1.txt")),
      20_000,
      "the files once readable",
    );
    await until(
      async () => {
        const st = JSON.parse((await cli(["status", "--config", ws.config, "--json"])).stdout);
        return st.problems.length === 0;
      },
      20_000,
      "status without problems",
    );
    // Watched now: a new file inside is found without a scan (periodic scans are off).
    write(path.join(ws.src, "closed/c2.txt"), "later\n");
    await until(
      () => fs.existsSync(path.join(ws.dst, "closed/c2.txt")),
      10_000,
      "a later file inside",
    );
    assertEquals(await d.stop(), 0);
    d = undefined;
    const again = await run(["sync", "--once", "--config", ws.config], {
      prefix: NO_DAC,
      timeoutMs: 60_000,
    });
    assertEquals(again.code, 0, again.stderr.slice(-3000));
  } finally {
    await d?.kill();
    for (const p of ["closed", "noexec"]) {
      try {
        fs.chmodSync(path.join(ws.src, p), 0o755);
      } catch {
        // Gone.
      }
    }
    ws.cleanup();
  }
});
