/**
 * Files in motion: rewritten while they upload, deleted or rewritten while a
 * processor runs, and a file of more than 1 GiB that must stream with
 * bounded memory.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { createHash } from "node:crypto";
import { assert, assertEquals } from "../_assert.ts";
import { cli, sleep, type Workspace, workspace, write } from "../_harness.ts";
import { diffR, figure, FULL, memory, randomBytes, sh, start, tempFiles, until } from "./_util.ts";
import { rcloneCat, rcloneList, type Remote, s3Remote, sftpRemote } from "./_remote.ts";

function config(ws: Workspace, ruleBody = "", settings = "", remotes: Remote[] = []) {
  fs.writeFileSync(
    ws.config,
    `<config>
  <sources><source name="site" scanPath="${ws.src}" /></sources>
  <servers>
    <server name="local" transporter="symlink_or_copy">
      <location>${ws.dst}</location>
      <url>http://cdn.test/</url>
      <copy>true</copy>
    </server>
    ${remotes.map((r) => r.serverXml(r.kind)).join("\n    ")}
  </servers>
  <rules><rule for="site" label="all">${ruleBody}<destinations><destination server="local" />${
      remotes.map((r) => `<destination server="${r.kind}" />`).join("")
    }</destinations></rule></rules>
  <settings>
    <dataDir>${ws.data}</dataDir>
    <settleDelay>20</settleDelay>
    <retryInitialDelay>0.2</retryInitialDelay>
    ${settings}
  </settings>
</config>
`,
  );
}

function md5(p: string): string {
  const h = createHash("md5");
  const fd = fs.openSync(p, "r");
  const buf = new Uint8Array(1 << 20);
  try {
    for (let n; (n = fs.readSync(fd, buf)) > 0;) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest("hex");
}

async function failures(ws: Workspace) {
  const r = await cli(["status", "--config", ws.config, "--json"]);
  return (JSON.parse(r.stdout) as { failures: { file: string; error: string }[] }).failures;
}

Deno.test("motion: a file rewritten while it uploads ends up with its final content", async () => {
  const ws = workspace("fc-motion-");
  const big = path.join(ws.src, "big.bin");
  fs.writeFileSync(big, randomBytes(8 * 1024 * 1024));
  for (let i = 1; i < 16; i++) fs.appendFileSync(big, randomBytes(8 * 1024 * 1024));
  config(ws);
  const d = start(["sync", "--config", ws.config]);
  try {
    // Rewrite it the moment its upload (a temp file at the destination) is under way.
    await until(() => tempFiles(ws.dst).length > 0, 30_000, "the upload to start", 2);
    const final = randomBytes(3 * 1024 * 1024 + 17);
    fs.writeFileSync(big, final);
    await until(
      () =>
        fs.existsSync(path.join(ws.dst, "big.bin")) &&
        md5(path.join(ws.dst, "big.bin")) === md5(big),
      60_000,
      "the final content at the destination",
      200,
    );
    // The content lands a moment before the job is recorded and logged as done.
    await until(
      () => /changed during the transfer|uploaded big\.bin|updated big\.bin/.test(d.log()),
      10_000,
      "the upload in the log",
    );
    await until(async () => (await failures(ws)).length === 0, 10_000, "no failures left");
    assertEquals(tempFiles(ws.dst), []);
    // A change during the transfer is not a failure: the job plans again, with no warning.
    const warned = d.log().split("\n").filter((l) => / (?:WARN|ERROR) .*big\.bin/.test(l));
    assertEquals(warned, []);
  } finally {
    await d.stop();
    ws.cleanup();
  }
});

Deno.test("motion: a file deleted or rewritten while a processor runs", async () => {
  const ws = workspace("fc-motion-proc-");
  // A slow processor: 1.5 s, then the content.
  const chain =
    `<processorChain><processor name="command" shell="true" command="sleep 1.5; cat {in}" /></processorChain>`;
  config(ws, chain);
  write(path.join(ws.src, "doomed.txt"), "delete me while processing\n");
  write(path.join(ws.src, "changing.txt"), "version 1\n");
  write(path.join(ws.src, "steady.txt"), "steady\n");
  const d = start(["sync", "--config", ws.config]);
  try {
    await d.waitFor("Initial scan done");
    await sleep(500);
    fs.rmSync(path.join(ws.src, "doomed.txt"));
    write(path.join(ws.src, "changing.txt"), "version 2, longer\n");
    await until(
      async () => (await diffR(ws.src, ws.dst)) === "",
      30_000,
      "source and destination equal",
      200,
    );
    assertEquals(fs.readFileSync(path.join(ws.dst, "changing.txt"), "utf8"), "version 2, longer\n");
    assert(!fs.existsSync(path.join(ws.dst, "doomed.txt")), "the deleted file was published");
    // Nothing stays failed: the delete superseded the failed processing.
    await until(async () => (await failures(ws)).length === 0, 10_000, "no failures left");
    // And the daemon goes on.
    write(path.join(ws.src, "later.txt"), "later\n");
    await until(() => fs.existsSync(path.join(ws.dst, "later.txt")), 15_000, "a later file");
  } finally {
    await d.stop();
    ws.cleanup();
  }
});

/** A workspace in RAM (/dev/shm), so gigabytes copy in seconds. */
function shmWorkspace(prefix: string): Workspace {
  const root = fs.mkdtempSync(path.join("/dev/shm", prefix));
  const ws = {
    root,
    src: path.join(root, "src"),
    dst: path.join(root, "dst"),
    data: path.join(root, "data"),
    config: path.join(root, "config.xml"),
    cleanup: () => fs.rmSync(root, { recursive: true, force: true }),
  };
  fs.mkdirSync(ws.src);
  fs.mkdirSync(ws.dst);
  return ws;
}

Deno.test("motion: a 1.05 GiB file streams to local, S3 (and SFTP with FC_FULL=1) with bounded memory", async () => {
  const ws = shmWorkspace("fc-motion-big-");
  // SFTP moves ~25 MB/s here (50 s for this file): only in the full run.
  const sftp = FULL ? await sftpRemote() : undefined;
  const s3 = await s3Remote();
  const servers = ["local", "s3", ...(sftp ? ["sftp"] : [])];
  const big = path.join(ws.src, "huge.bin");
  const size = 1080 * 1024 * 1024; // > 1 GiB
  // Sparse, with real data at both ends and in the middle.
  const fd = fs.openSync(big, "w");
  const marks = [0, 600 * 1024 * 1024, size - (1 << 20)];
  for (const at of marks) fs.writeSync(fd, randomBytes(1 << 20), 0, 1 << 20, at);
  fs.closeSync(fd);
  assertEquals(fs.statSync(big).size, size);
  config(ws, "", "", sftp ? [sftp, s3] : [s3]);
  const d = start(["sync", "--config", ws.config]);
  try {
    let peak = 0;
    const t0 = Date.now();
    const done = (server: string) =>
      new RegExp(`\\[\\w+:${server}\\] uploaded huge\\.bin`).test(d.log());
    const times: Record<string, number> = {};
    await until(
      () => {
        const m = memory(d.pid);
        if (m) peak = Math.max(peak, m.peak);
        for (const s of servers) {
          if (!times[s] && done(s)) times[s] = Date.now() - t0;
        }
        return Object.keys(times).length === servers.length;
      },
      300_000,
      "the uploads",
      100,
    ).catch((e) => {
      throw new Error(`${(e as Error).message}\n${d.log().slice(-3000)}`);
    });
    const m = memory(d.pid);
    if (m) peak = Math.max(peak, m.peak);
    // Read back independently: cmp locally, the SFTP server's disk, rclone for S3.
    await sh("cmp", [big, path.join(ws.dst, "huge.bin")]);
    if (sftp) await sh("cmp", [big, path.join(sftp.info.root, sftp.dir, "huge.bin")]);
    const listed = await rcloneList(s3);
    assertEquals(listed.map((f) => [f.Path, f.Size]), [["huge.bin", size]]);
    const src = fs.openSync(big, "r");
    try {
      for (const at of marks) {
        const want = new Uint8Array(1 << 20);
        fs.readSync(src, want, 0, want.length, at);
        const got = await rcloneCat(s3, "huge.bin", at, 1 << 20);
        assert(
          got.length === want.length && got.every((b, i) => b === want[i]),
          `S3 bytes at ${at} differ`,
        );
      }
    } finally {
      fs.closeSync(src);
    }
    // verify agrees (a multipart object: its MD5 comes from the metadata, not the ETag).
    const v = await cli(["verify", "--config", ws.config]);
    assertEquals(v.code, 0, v.stdout + v.stderr);
    figure("motion.1.05GiB", { peakRssMiB: Math.round(peak / 1024), msPerDestination: times });
    assert(peak < 400 * 1024, `peak RSS ${Math.round(peak / 1024)} MiB while streaming 1.05 GiB`);
  } finally {
    await d.stop();
    await sftp?.cleanup();
    await s3.cleanup();
    ws.cleanup();
  }
});
