/**
 * kill -9 at random moments, local destination (symlink_or_copy, copying):
 * after a restart the destination equals the source (`diff -r`), `verify`
 * agrees, no temp file is left and the database is intact.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals } from "../_assert.ts";
import { localConfig, sleep, workspace } from "../_harness.ts";
import { crashScenario } from "./_crash.ts";
import { diffR, figure, mode, run, start, tempFiles } from "./_util.ts";

Deno.test("crash: kill -9 during initial sync and live changes, local destination converges", async () => {
  const ws = workspace("fc-crash-local-");
  try {
    await crashScenario(ws, {
      name: "local",
      serverXml: `<server name="dest" transporter="symlink_or_copy">
      <location>${ws.dst}</location>
      <url>http://cdn.test/</url>
      <copy>true</copy>
    </server>`,
      destPath: "",
      async independentCheck(src) {
        const temps = tempFiles(ws.dst);
        if (temps.length > 0) return `temp files left: ${temps.join(", ")}`;
        return await diffR(src, ws.dst);
      },
    }, {
      initialKills: mode(6, 25),
      liveKills: mode(6, 25),
      files: mode(400, 2000),
      bigSize: 4 * 1024 * 1024,
      killAfter: [150, 1500],
    });
  } finally {
    ws.cleanup();
  }
});

Deno.test("crash: SIGTERM stops sync --once with work left (within the grace period); the next run finishes it", async () => {
  const ws = workspace("fc-term-once-");
  try {
    for (let i = 0; i < 6; i++) fs.writeFileSync(path.join(ws.src, `f${i}.txt`), `file ${i}\n`);
    // A slow processor keeps the queue busy for ~10 s.
    localConfig(ws, {
      ruleBody:
        `<processorChain><processor name="command" shell="true" command="sleep 1; cat {in}" /></processorChain>`,
      settings: { maxSimultaneousProcessorChains: "1" },
    });
    const d = start(["sync", "--once", "--config", ws.config]);
    await d.waitFor("Initial scan done");
    await sleep(1500);
    const t0 = Date.now();
    const code = await d.stop();
    const ms = Date.now() - t0;
    figure("sigtermOnce.stopMs", ms);
    assert(ms < 15_000, `took ${ms} ms to stop`);
    assert(code === 0 || code === 1, `exit ${code}`);
    assert(fs.readdirSync(ws.dst).length < 6, "it did not stop early");
    const r = await run(["sync", "--once", "--config", ws.config], { timeoutMs: 60_000 });
    assertEquals(r.code, 0, r.stderr.slice(-2000));
    assertEquals(await diffR(ws.src, ws.dst), "");
  } finally {
    ws.cleanup();
  }
});
