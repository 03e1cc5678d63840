/**
 * Disk full: the data directory (the database), the working directory
 * (processor output) and a local destination on small tmpfs mounts. Each
 * must give a clear error, leave the database intact (integrity_check) and
 * recover once space returns.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals } from "../_assert.ts";
import { cli, localConfig, sleep, type Workspace, workspace, write } from "../_harness.ts";
import {
  diffR,
  figure,
  fill,
  integrityCheck,
  mountTmpfs,
  type Proc,
  start,
  unmount,
  until,
} from "./_util.ts";

/** Syncs `ws.src` to `ws.dst`, retrying fast and rescanning every second. */
function config(
  ws: Workspace,
  opts: { ruleBody?: string; settings?: Record<string, string> } = {},
) {
  localConfig(ws, {
    ...(opts.ruleBody ? { ruleBody: opts.ruleBody } : {}),
    settings: {
      retryInitialDelay: "0.2",
      retryMaxDelay: "1",
      rescanInterval: "1",
      ...opts.settings,
    },
  });
}

function populate(src: string, n: number, tag = "f") {
  for (let i = 0; i < n; i++) {
    write(
      path.join(src, `dir-${i % 20}`, `${tag}-file-with-a-longish-name-${i}.txt`),
      `${tag} ${i}\n`,
    );
  }
}

async function stopAndCheck(d: Proc, ws: Workspace) {
  const code = await d.stop();
  assertEquals(code, 0, `the daemon did not stop cleanly:\n${d.log().slice(-3000)}`);
  assertEquals(await integrityCheck(path.join(ws.data, "fileconveyor.db")), "ok");
}

Deno.test("disk full: the data directory fills up mid-sync; clear error, intact database, recovery", async () => {
  const ws = workspace("fc-full-data-");
  await mountTmpfs(ws.data, "16m");
  let d: Proc | undefined;
  try {
    populate(ws.src, 300);
    config(ws);
    d = start(["sync", "--config", ws.config]);
    await d.waitFor("Initial scan done");
    const ballast = fill(ws.data);
    // New work while the disk is full: scans and job records cannot be written.
    populate(ws.src, 400, "g");
    await d.waitFor(/disk is full|No space left/i, 20_000);
    await sleep(1500);
    assert(
      d.child.pid > 0 &&
        (await Promise.race([d.exited, sleep(10).then(() => "alive")])) === "alive",
      `the daemon died:\n${d.log().slice(-3000)}`,
    );
    const errors = d.log().split("\n").filter((l) => /disk is full|No space left/i.test(l));
    figure("diskFull.data.errorExample", errors[0]?.replace(/^\S+ /, "") ?? "");
    assert(
      errors.some((l) => l.includes(ws.data) || /data director/i.test(l)),
      `the error does not say which disk:\n${errors.slice(0, 3).join("\n")}`,
    );
    // Space comes back: everything converges without a restart.
    fs.rmSync(ballast);
    const t0 = Date.now();
    await until(
      async () => (await diffR(ws.src, ws.dst)) === "",
      60_000,
      "convergence after space returned",
      250,
    ).catch(async (e) => {
      const files = fs.readdirSync(ws.data).map((f) =>
        `${f} ${fs.statSync(path.join(ws.data, f)).size}`
      );
      throw new Error(
        `${(e as Error).message}\ndata: ${files.join(", ")}\ndiff: ${
          (await diffR(ws.src, ws.dst)).slice(0, 1500)
        }\n${d!.log().slice(-6000)}`,
      );
    });
    let last = "";
    await until(
      async () => {
        const v = await cli(["verify", "--config", ws.config]);
        last = v.stdout;
        return v.code === 0;
      },
      30_000,
      "verify to agree",
      500,
    ).catch((e) => {
      throw new Error(`${(e as Error).message}\n${last}\n${d!.log().slice(-3000)}`);
    });
    figure("diskFull.data.recoveryMs", Date.now() - t0);
    await stopAndCheck(d, ws);
    d = undefined;
  } finally {
    await d?.kill();
    await unmount(ws.data).catch(() => {});
    ws.cleanup();
  }
});

Deno.test("disk full: the data directory is full at start; clear error, exit 1, nothing corrupted", async () => {
  const ws = workspace("fc-full-start-");
  await mountTmpfs(ws.data, "4m");
  try {
    populate(ws.src, 50);
    config(ws);
    const ballast = fill(ws.data);
    const r = await cli(["sync", "--once", "--config", ws.config]);
    assert(r.code !== 0, "sync succeeded on a full disk?");
    assert(/disk is full|No space left/i.test(r.stderr), r.stderr.slice(-2000));
    assert(
      !/Uncaught|at .*\.ts:\d+/.test(r.stderr),
      `a stack trace instead of a message:\n${r.stderr.slice(-2000)}`,
    );
    fs.rmSync(ballast);
    const again = await cli(["sync", "--once", "--config", ws.config]);
    assertEquals(again.code, 0, again.stderr.slice(-2000));
    assertEquals(await diffR(ws.src, ws.dst), "");
    assertEquals(await integrityCheck(path.join(ws.data, "fileconveyor.db")), "ok");
  } finally {
    await unmount(ws.data).catch(() => {});
    ws.cleanup();
  }
});

Deno.test("disk full: the working directory fills up; the file fails alone, clearly, and recovers", async () => {
  const ws = workspace("fc-full-work-");
  const work = path.join(ws.root, "work");
  await mountTmpfs(work, "1m");
  let d: Proc | undefined;
  try {
    write(path.join(ws.src, "small.txt"), "small\n");
    fs.writeFileSync(path.join(ws.src, "large.txt"), "x".repeat(3 * 1024 * 1024));
    // A processor writes its output to the working directory.
    config(ws, {
      ruleBody:
        `<processorChain><processor name="command" command="cp {in} {out}" /></processorChain>`,
      // Retried until space returns, never marked failed meanwhile (a failed file waits for a change).
      settings: { workingDir: work, retryFailAfter: "1000" },
    });
    d = start(["sync", "--config", ws.config]);
    await until(() => fs.existsSync(path.join(ws.dst, "small.txt")), 20_000, "the small file");
    await d.waitFor(/large\.txt[^\n]*(No space left|disk is full|ENOSPC)/i, 20_000);
    // The log line can come a moment before the failure is committed: poll status.
    let seen: { file: string; error: string }[] = [];
    await until(
      async () => {
        const st = JSON.parse((await cli(["status", "--config", ws.config, "--json"])).stdout) as {
          failures: { file: string; error: string }[];
        };
        seen = st.failures;
        const f = st.failures.find((x) => x.file.endsWith("large.txt"));
        return f && /working directory .* is full/i.test(f.error);
      },
      10_000,
      "status to list large.txt with the reason",
      100,
    ).catch((e) => {
      throw new Error(`${(e as Error).message}: ${JSON.stringify(seen)}`);
    });
    // Space returns (the mount grows): the retry succeeds.
    const grown = await new Deno.Command("mount", { args: ["-o", "remount,size=16m", work] })
      .output();
    assertEquals(grown.code, 0, new TextDecoder().decode(grown.stderr));
    await until(
      async () => (await diffR(ws.src, ws.dst)) === "",
      30_000,
      "the large file after space returned",
      250,
    ).catch((e) => {
      throw new Error(`${(e as Error).message}\n${d!.log().slice(-4000)}`);
    });
    await stopAndCheck(d, ws);
    d = undefined;
  } finally {
    await d?.kill();
    await unmount(work).catch(() => {});
    ws.cleanup();
  }
});

Deno.test("disk full: a local destination fills up; the server backs off and catches up", async () => {
  const ws = workspace("fc-full-dst-");
  await mountTmpfs(ws.dst, "2m");
  let d: Proc | undefined;
  try {
    for (let i = 0; i < 12; i++) {
      fs.writeFileSync(path.join(ws.src, `blob${i}.bin`), new Uint8Array(300 * 1024).fill(i));
    }
    config(ws);
    d = start(["sync", "--config", ws.config]);
    await d.waitFor(/No space left|disk is full|ENOSPC/i, 20_000);
    // status shows the server failing with the reason (until a retry succeeds).
    await until(
      async () => {
        const st = JSON.parse((await cli(["status", "--config", ws.config, "--json"])).stdout) as {
          servers: { name: string; lastError: string | null }[];
        };
        return /No space left|ENOSPC|full/i.test(st.servers[0]!.lastError ?? "");
      },
      10_000,
      "status to show the reason",
      50,
    );
    await new Deno.Command("mount", { args: ["-o", "remount,size=16m", ws.dst] }).output();
    await until(
      async () => (await diffR(ws.src, ws.dst)) === "",
      30_000,
      "the destination after space returned",
      250,
    );
    await stopAndCheck(d, ws);
    d = undefined;
  } finally {
    await d?.kill();
    await unmount(ws.dst).catch(() => {});
    ws.cleanup();
  }
});
