/**
 * The verify engine called directly (the CLI's end-to-end checks against
 * real servers are in tests/reliability/verify_test.ts).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { formatVerify } from "../../src/cli/verify.ts";
import { loadConfig } from "../../src/config/load.ts";
import { Store } from "../../src/store/store.ts";
import "../../src/transports/mod.ts";
import { tempName } from "../../src/util/temp_name.ts";
import { checkUrl } from "../../src/verify/check_url.ts";
import { verify } from "../../src/verify/verify.ts";
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { cli, localConfig, workspace, write } from "../_harness.ts";

Deno.test("verify() ignores temp names, ignored directories and symlinks out of the source", async () => {
  const ws = workspace("fc-verify-engine-");
  try {
    write(path.join(ws.src, "a.txt"), "a");
    write(path.join(ws.src, "css/b.css"), "b");
    const config = loadConfig(localConfig(ws, { ignoredDirs: "cache" }));
    assertEquals((await cli(["sync", "--once", "--config", ws.config])).code, 0);
    // Written after the sync: none of these is a source file the rules send anywhere.
    write(path.join(ws.src, "css", tempName("b.css")), "partial");
    write(path.join(ws.src, "cache/deep/c.txt"), "ignored");
    write(path.join(ws.root, "outside.txt"), "outside");
    fs.symlinkSync(path.join(ws.root, "outside.txt"), path.join(ws.src, "link.txt"));
    const r = await verify(config);
    assertEquals(r.ok, true, JSON.stringify(r.servers[0]?.problems));
    const s = r.servers[0]!;
    assertEquals([s.records, s.sourceFiles, s.ok, s.problems.length], [2, 2, 2, 0]);
    assertEquals(s.capabilities, { stat: true, list: true });
    assertEquals(r.sources, [{ name: "site", scanPath: ws.src, present: true }]);
    assertIncludes(formatVerify(r), 'Server "local" (symlink_or_copy): OK — 2 records, 2 ok');
  } finally {
    ws.cleanup();
  }
});

Deno.test("verify() warns about records of unknown servers, an unknown --server and a missing source", async () => {
  const ws = workspace("fc-verify-engine-");
  try {
    write(path.join(ws.src, "a.txt"), "a");
    const config = loadConfig(localConfig(ws));
    assertEquals((await cli(["sync", "--once", "--config", ws.config])).code, 0);
    const store = new Store(ws.data);
    const row = store.syncedFor(path.join(ws.src, "a.txt"))[0]!;
    store.putSynced({ ...row, server: "retired" });
    store.close();
    let r = await verify(config, { server: "nope" });
    assertEquals(r.ok, false);
    assertEquals(r.servers, []);
    assertEquals(r.warnings, [
      "Records for servers no longer in the configuration were not checked: retired",
      'No server named "nope" in the configuration',
    ]);
    fs.rmSync(ws.src, { recursive: true });
    r = await verify(config);
    assertIncludes(r.warnings.join("\n"), 'Source "site"');
    assertIncludes(r.warnings.join("\n"), "is missing: its files are not compared");
    // Nothing is judged stale when its source root is gone.
    assertEquals(r.servers[0]!.problems, []);
  } finally {
    ws.cleanup();
  }
});

Deno.test("checkUrl() accepts 2xx, falls back to GET when HEAD is refused, reports the rest", async () => {
  const methods: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const p = new URL(req.url).pathname;
    methods.push(`${req.method} ${p}`);
    if (p === "/ok") return new Response("x");
    if (p === "/nohead") {
      return req.method === "HEAD"
        ? new Response(null, { status: 405 })
        : new Response("x", { status: 206 });
    }
    if (p === "/slow") return new Promise((r) => setTimeout(() => r(new Response("x")), 1500));
    return new Response("gone", { status: 404 });
  });
  try {
    const base = `http://127.0.0.1:${server.addr.port}`;
    assertEquals(await checkUrl(`${base}/ok`, 5000), undefined);
    assertEquals(await checkUrl(`${base}/nohead`, 5000), undefined);
    assertEquals(await checkUrl(`${base}/missing`, 5000), "HTTP 404");
    assertEquals(await checkUrl(`${base}/slow`, 200), "no answer within 0.2 s");
    assert(methods.includes("GET /nohead"), methods.join());
    const refused = await checkUrl("http://127.0.0.1:1/x", 5000);
    assert(refused !== undefined && refused.length > 0);
  } finally {
    await server.shutdown();
  }
});
