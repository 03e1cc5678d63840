/**
 * Control of a running daemon, end to end: the PID file, and SIGHUP
 * reloading the configuration (new servers and rules take effect, files no
 * longer matched stay where they are, an invalid file is rejected with its
 * line numbers while the running configuration goes on).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { localConfig, sleep, spawn, workspace, write } from "../_harness.ts";
import type { Workspace } from "../_harness.ts";
import { get, httpBase, until } from "./_helpers.ts";

function config(ws: Workspace, pidFile: string, extra: { second?: boolean; broken?: boolean }) {
  const dst2 = path.join(ws.root, "dst2");
  return `<?xml version="1.0" encoding="UTF-8"?>
<config>
  <sources>
    <source name="site" scanPath="${ws.src}" />
  </sources>
  <servers>
    <server name="local" transporter="symlink_or_copy">
      <location>${ws.dst}</location>
      <url>http://cdn.test/</url>
      <copy>true</copy>${extra.broken ? "\n      <colour>blue</colour>" : ""}
    </server>${
    extra.second
      ? `
    <server name="second" transporter="symlink_or_copy">
      <location>${dst2}</location>
      <url>http://cdn2.test/</url>
      <copy>true</copy>
    </server>`
      : ""
  }
  </servers>
  <rules>
    <rule for="site" label="text">
      ${extra.second ? "<filter><extensions>txt</extensions></filter>" : ""}
      <destinations><destination server="local" /></destinations>
    </rule>${
    extra.second
      ? `
    <rule for="site" label="styles">
      <filter><extensions>css</extensions></filter>
      <destinations><destination server="second" path="static" /></destinations>
    </rule>`
      : ""
  }
  </rules>
  <settings>
    <dataDir>${ws.data}</dataDir>
    <settleDelay>20</settleDelay>
    <rescanInterval>0</rescanInterval>
    <pidFile>${pidFile}</pidFile>
  </settings>
</config>
`;
}

const exists = (p: string) => () => fs.existsSync(p) ? "" : `missing ${p}`;

Deno.test("SIGHUP reloads the configuration; an invalid one is rejected and the old one keeps running", async () => {
  const ws = workspace("fc-ops-reload-");
  const pidFile = path.join(ws.root, "run", "fileconveyor.pid");
  const dst2 = path.join(ws.root, "dst2");
  write(path.join(ws.src, "a.txt"), "a");
  write(path.join(ws.src, "css", "b.css"), "b{}");
  fs.writeFileSync(ws.config, config(ws, pidFile, {}));
  const run = spawn(["sync", "--config", ws.config]);
  try {
    await run.waitFor("Initial scan done");
    await until(exists(path.join(ws.dst, "css", "b.css")));
    await until(exists(path.join(ws.dst, "a.txt")));
    // The PID file holds the daemon's pid.
    assertEquals(fs.readFileSync(pidFile, "utf8"), `${run.child.pid}\n`);

    // New server and rules: css goes to "second" only, txt to "local" only.
    fs.writeFileSync(ws.config, config(ws, pidFile, { second: true }));
    run.child.kill("SIGHUP");
    await run.waitFor("Configuration reloaded");
    // Newly matched: synced to the new destination.
    await until(exists(path.join(dst2, "static", "css", "b.css")));
    assert(!fs.existsSync(path.join(dst2, "static", "a.txt")), "a.txt does not match the css rule");
    // No longer matched on "local": left alone there.
    await sleep(300);
    assert(fs.existsSync(path.join(ws.dst, "css", "b.css")), "b.css stays on local");
    write(path.join(ws.src, "c.css"), "c{}");
    write(path.join(ws.src, "d.txt"), "d");
    await until(exists(path.join(dst2, "static", "c.css")));
    await until(exists(path.join(ws.dst, "d.txt")));
    assert(!fs.existsSync(path.join(ws.dst, "c.css")), "c.css only goes to second");

    // A broken file: rejected with its line number; the running configuration goes on.
    fs.writeFileSync(ws.config, config(ws, pidFile, { second: true, broken: true }));
    const line = config(ws, pidFile, { second: true, broken: true }).split("\n")
      .findIndex((l) => l.includes("<colour>")) + 1;
    run.child.kill("SIGHUP");
    await run.waitFor("Configuration not reloaded");
    const err = run.log().split("\n").find((l) => l.includes("Configuration not reloaded"))!;
    assertIncludes(err, "ERROR [ops]");
    assertIncludes(err, `${ws.config}:${line}:`);
    assertIncludes(err, '"colour"');
    write(path.join(ws.src, "e.txt"), "e");
    write(path.join(ws.src, "e.css"), "e{}");
    await until(exists(path.join(ws.dst, "e.txt")));
    await until(exists(path.join(dst2, "static", "e.css")));

    assertEquals(await run.stop(), 0);
    assert(!fs.existsSync(pidFile), "the PID file is removed at exit");
  } finally {
    await run.kill();
    ws.cleanup();
  }
});

Deno.test("SIGHUP with only the http setting changed moves the listener and queues nothing", async () => {
  const ws = workspace("fc-ops-reload-http-");
  write(path.join(ws.src, "a.txt"), "a");
  localConfig(ws, { settings: { rescanInterval: "0", http: "127.0.0.1:0" } });
  const run = spawn(["sync", "--config", ws.config]);
  try {
    await until(exists(path.join(ws.dst, "a.txt")));
    const first = await httpBase(run);
    localConfig(ws, { settings: { rescanInterval: "0", http: "localhost:0" } });
    run.child.kill("SIGHUP");
    await run.waitFor("Configuration reloaded");
    await until(() => {
      const urls = [...run.log().matchAll(/on (http:\/\/[^\s/]+)\//g)].map((m) => m[1]);
      return urls.length === 2 ? "" : urls.join();
    });
    const second = [...run.log().matchAll(/on (http:\/\/[^\s/]+)\//g)][1]![1]!;
    assert(second !== first, `${first} → ${second}`);
    assertEquals((await get(second, "/healthz")).status, 200);
    await fetch(first + "/healthz").then(
      (r) => {
        throw new Error(`the old listener still answers: ${r.status}`);
      },
      () => {},
    );
    const uploads = run.log().split("\n").filter((l) => l.includes("uploaded a.txt"));
    assertEquals(uploads.length, 1, run.log());
    assert(!run.log().includes("re-evaluating"), "nothing to re-evaluate");
    assertEquals(await run.stop(), 0);
  } finally {
    await run.kill();
    ws.cleanup();
  }
});
