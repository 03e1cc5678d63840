import * as path from "node:path";
import { loadConfig } from "../../src/config/load.ts";
import { ClassifiedError } from "../../src/errors.ts";
import { logger } from "../../src/log.ts";
import "../../src/transports/mod.ts";
import { createTransport, maxConnectionsOf, serverStateDir } from "../../src/transports/factory.ts";
import { assert, assertEquals, assertRejects } from "../_assert.ts";
import { checkOptions } from "../../src/options.ts";
import { getTransportDef } from "../../src/transports/transport.ts";
import { localConfig, workspace, write } from "../_harness.ts";

Deno.test("createTransport() opens a configured server's transport, which works", async () => {
  const ws = workspace("fc-factory-");
  try {
    const config = loadConfig(localConfig(ws));
    const server = config.servers[0]!;
    const t = await createTransport(config, server, { dataDir: ws.data, log: logger("test") });
    try {
      write(path.join(ws.src, "a.txt"), "abc");
      await t.put(path.join(ws.src, "a.txt"), "x/a.txt", {
        signal: new AbortController().signal,
        size: 3,
        unprocessed: true,
      });
      assertEquals(Deno.readTextFileSync(path.join(ws.dst, "x/a.txt")), "abc");
      assertEquals(t.url("x/a.txt"), "http://cdn.test/x/a.txt");
    } finally {
      await t.close();
    }
  } finally {
    ws.cleanup();
  }
});

Deno.test("createTransport() refuses a transporter this build lacks as a fatal error naming the server", async () => {
  const ws = workspace("fc-factory-");
  try {
    const config = loadConfig(localConfig(ws));
    const server = { ...config.servers[0]!, transporter: "carrier_pigeon" };
    let thrown: unknown;
    await createTransport(config, server, { dataDir: ws.data, log: logger("test") })
      .catch((e) => thrown = e);
    assert(thrown instanceof ClassifiedError, String(thrown));
    assertEquals(thrown.kind, "fatal");
    assertEquals(
      thrown.message,
      'Transporter "carrier_pigeon" of server "local" is not available in this build',
    );
  } finally {
    ws.cleanup();
  }
});

Deno.test("maxConnectionsOf() and serverStateDir() follow the configuration", () => {
  const ws = workspace("fc-factory-");
  try {
    const config = loadConfig(localConfig(ws));
    const server = config.servers[0]!;
    assertEquals(maxConnectionsOf(config, server), config.settings.defaultMaxConnections);
    assertEquals(maxConnectionsOf(config, { ...server, maxConnections: 3 }), 3);
    assertEquals(serverStateDir("/data", "cdn one/ü"), "/data/servers/cdn_one__");
  } finally {
    ws.cleanup();
  }
});

Deno.test("create() of every network transport refuses bad settings with one message naming the server", async () => {
  const ctx = {
    serverName: "cdn",
    log: logger("factory-test"),
    maxConnections: 1,
    timeoutMs: 1000,
    sourceRoots: [],
    stateDir: "/nonexistent",
  };
  for (const name of ["ftp", "sftp", "s3", "cf", "cloudfiles"]) {
    const def = getTransportDef(name)!;
    // A value one option's own check refuses.
    const e = await assertRejects(
      () => def.create({ bogus_setting: "x" }, ctx),
      ClassifiedError,
      `Invalid settings for server "cdn": Unknown setting "bogus_setting"`,
    );
    assertEquals((e as ClassifiedError).kind, "fatal", name);
  }
  // Cross-setting checks run on the typed settings, in validate() and in create() alike.
  const ftp = getTransportDef("ftp")!;
  const values = {
    host: "127.0.0.1",
    username: "u",
    password: "p",
    url: "https://cdn.example.com/",
    passive: "no",
  };
  const problem = `Setting "passive" cannot be false: only passive mode is supported`;
  assertEquals(ftp.validate?.(checkOptions(ftp.options, values).values), [problem]);
  await assertRejects(() => ftp.create(values, ctx), ClassifiedError, problem);
  const sftp = getTransportDef("sftp")!;
  const key = { host: "h", username: "u", url: "https://cdn.example.com/", passphrase: "x" };
  assertEquals(sftp.validate?.(checkOptions(sftp.options, key).values), [
    `Setting "passphrase" needs "key"`,
  ]);
  await assertRejects(() => sftp.create(key, ctx), ClassifiedError, `needs "key"`);
});
