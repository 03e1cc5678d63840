/**
 * Lookups, end to end: `fileconveyor url`, the query the Drupal CDN
 * module's "File Conveyor mode" runs on `synced_files`, and `status` (with
 * lag) while the daemon runs.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { cli, ENTRY, localConfig, spawn, workspace, write } from "../_harness.ts";
import { until } from "./_helpers.ts";

async function cliIn(cwd: string, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ENTRY, ...args],
    cwd,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("url prints the public URL of a synced file; the Drupal CDN module's query finds it", async () => {
  const ws = workspace("fc-ops-url-");
  try {
    write(path.join(ws.src, "css", "site.css"), "body{}");
    write(path.join(ws.src, "img", "a b.png"), "png");
    localConfig(ws);
    assertEquals((await cli(["sync", "--once", "--config", ws.config])).code, 0);
    const file = path.join(ws.src, "css", "site.css");

    let r = await cli(["url", file, "--config", ws.config]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout, "local\thttp://cdn.test/css/site.css\n");
    r = await cli(["url", file, "--server", "local", "--config", ws.config]);
    assertEquals(r.stdout, "http://cdn.test/css/site.css\n");
    r = await cli(["url", path.join(ws.src, "img", "a b.png"), "--json", "--config", ws.config]);
    const rows = JSON.parse(r.stdout) as { server: string; url: string }[];
    assertEquals(rows.length, 1);
    assertEquals(rows[0]!.server, "local");
    assert(/^http:\/\/cdn\.test\/img\/a(%20| )b\.png$/.test(rows[0]!.url), rows[0]!.url);

    // A relative path, through a symlinked directory: resolved like PHP's realpath().
    const link = path.join(ws.root, "docroot");
    fs.symlinkSync(ws.src, link);
    r = await cliIn(link, ["url", "css/site.css", "--server", "local", "--config", ws.config]);
    assertEquals(r.stdout, "http://cdn.test/css/site.css\n", r.stderr);

    // Not synced, or not on that server: exit 1 with a reason.
    write(path.join(ws.src, "new.txt"), "not yet");
    r = await cli(["url", path.join(ws.src, "new.txt"), "--config", ws.config]);
    assertEquals(r.code, 1);
    assertIncludes(r.stderr, "is not synced");
    r = await cli(["url", file, "--server", "other", "--config", ws.config]);
    assertEquals(r.code, 1);
    assertIncludes(r.stderr, 'is not synced to server "other"');

    // What the CDN module does: SELECT url, server FROM synced_files WHERE input_file = realpath.
    const db = new DatabaseSync(path.join(ws.data, "fileconveyor.db"), { readOnly: true });
    try {
      const found = db.prepare(
        "SELECT url, server FROM synced_files WHERE input_file = :input_file",
      )
        .all({ input_file: fs.realpathSync(path.join(link, "css", "site.css")) });
      assertEquals(found.map((x) => ({ ...x })), [{
        url: "http://cdn.test/css/site.css",
        server: "local",
      }]);
      const counts = db.prepare(
        "SELECT COUNT(*) AS count, server FROM synced_files WHERE input_file LIKE :root GROUP BY server",
      ).all({ root: ws.src + "%" });
      assertEquals(counts.map((x) => ({ ...x })), [{ count: 2, server: "local" }]);
    } finally {
      db.close();
    }
  } finally {
    ws.cleanup();
  }
});

Deno.test("status shows lag per server and failures while the daemon runs", async () => {
  const ws = workspace("fc-ops-status-");
  write(path.join(ws.src, "a.txt"), "a");
  write(path.join(ws.src, "b.txt"), "b");
  write(path.join(ws.src, "bad.css"), "x{}");
  write(path.join(ws.dst, "bad.css", "keep"), "a directory where the file must go");
  const run = spawn(["sync", "--config", localConfig(ws, { settings: { rescanInterval: "0" } })]);
  try {
    await until(() => fs.existsSync(path.join(ws.dst, "b.txt")) ? "" : "b.txt");
    await run.waitFor("marked as failed");
    const text = await cli(["status", "--config", ws.config]);
    assertEquals(text.code, 0, text.stderr);
    assertIncludes(text.stdout, `Daemon: running (pid ${run.child.pid}); watch: site=native`);
    assertIncludes(text.stdout, "1 failed");
    const header = text.stdout.split("\n").find((l) => l.startsWith("SERVER"))!;
    assertIncludes(header, "LAG p50/max");
    const row = text.stdout.split("\n").find((l) => l.startsWith("local"))!;
    assert(/ \d+(ms|\.\ds)\/\d+(ms|\.\ds) /.test(row), row);
    assertIncludes(text.stdout, "[failed]");
    assertIncludes(text.stdout, "bad.css");

    const json = await cli(["status", "--json", "--config", ws.config]);
    const r = JSON.parse(json.stdout);
    assertEquals(r.daemon.running, true);
    assertEquals(r.servers[0].lag.transfers, 2);
    assert(r.servers[0].lag.p50Ms >= 0 && r.servers[0].lag.maxMs >= r.servers[0].lag.p50Ms);
    assertEquals(r.failures.length, 1);
    assertEquals(await run.stop(), 0);
  } finally {
    await run.kill();
    ws.cleanup();
  }
});
