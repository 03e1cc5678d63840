/**
 * kill -9 at random moments with remote destinations: SFTP (OpenSSH) and S3
 * (Swift's s3api). After a restart `verify` and rclone (an independent
 * client) find the destination identical to the source, with no temp file
 * left, and the database intact.
 *
 * @module
 */
import { workspace } from "../_harness.ts";
import { crashScenario } from "./_crash.ts";
import { hasTransport, rcloneCompare, type Remote, s3Remote, sftpRemote } from "./_remote.ts";
import { mode } from "./_util.ts";

async function scenario(remote: Remote) {
  const ws = workspace(`fc-crash-${remote.kind}-`);
  try {
    await crashScenario(ws, {
      name: remote.kind,
      serverXml: remote.serverXml("dest"),
      destPath: "site",
      independentCheck: (src) => rcloneCompare(remote, src, "site"),
    }, {
      initialKills: mode(3, 10),
      liveKills: mode(3, 10),
      files: mode(150, 600),
      bigSize: 3 * 1024 * 1024,
      killAfter: [400, 3500],
    });
  } finally {
    await remote.cleanup();
    ws.cleanup();
  }
}

Deno.test("crash: kill -9 during initial sync and live changes, SFTP destination converges", async () => {
  if (!hasTransport("sftp")) {
    throw new Error("The sftp transport is not registered in src/transports/mod.ts");
  }
  await scenario(await sftpRemote());
});

Deno.test("crash: kill -9 during initial sync and live changes, S3 destination converges", async () => {
  if (!hasTransport("s3")) {
    throw new Error("The s3 transport is not registered in src/transports/mod.ts");
  }
  await scenario(await s3Remote());
});
