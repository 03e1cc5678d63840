/**
 * kill -9 at random moments, local destination (symlink_or_copy, copying):
 * after a restart the destination equals the source (`diff -r`), `verify`
 * agrees, no temp file is left and the database is intact.
 *
 * @module
 */
import { workspace } from "../_harness.ts";
import { crashScenario } from "./_crash.ts";
import { diffR, mode, tempFiles } from "./_util.ts";

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
