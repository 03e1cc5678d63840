/**
 * The ftp transport against a real ProFTPD (scripts/dev-servers/ftp.sh): plain
 * FTP, explicit and implicit FTPS. Servers that require TLS session reuse
 * are tested in ftps_reuse_test.ts. Every test uses its own directory, so
 * test files can share the server.
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { isSessionReuseRefusal, normalizeCertFingerprint } from "../../src/transports/ftp.ts";
import { ClassifiedError } from "../../src/errors.ts";
import { logger } from "../../src/log.ts";
import { checkOptions } from "../../src/options.ts";
import {
  getTransportDef,
  isLister,
  isStater,
  type Transport,
} from "../../src/transports/transport.ts";
import { type FtpInfo, startServer } from "../_servers.ts";
import { assert, assertEquals, assertIncludes, assertRejects } from "../_assert.ts";
import { TcpProxy } from "../_proxy.ts";
import { conformance } from "./_conformance.ts";

const SERVER = "test-ftp";

interface Env {
  info: FtpInfo;
  dir: string;
  local: string;
  tmp: string;
  cleanup(): Promise<void>;
}

async function env(): Promise<Env> {
  const info = await startServer("ftp");
  const dir = `fc-ftp-${crypto.randomUUID().slice(0, 8)}`;
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), "fc-ftp-test-"));
  return {
    info,
    dir,
    local: path.join(info.root, dir),
    tmp,
    cleanup: async () => {
      await fs.rm(path.join(info.root, dir), { recursive: true, force: true });
      await fs.rm(tmp, { recursive: true, force: true });
    },
  };
}

async function make(
  e: Env,
  settings: Record<string, string> = {},
  opts: { timeoutMs?: number; maxConnections?: number } = {},
): Promise<Transport> {
  const def = getTransportDef("ftp")!;
  const { values, problems } = checkOptions(def.options, {
    host: e.info.host,
    port: String(e.info.port),
    username: e.info.username,
    password: e.info.password,
    url: "https://cdn.example.com/files",
    path: e.dir,
    ...settings,
  });
  assertEquals(problems, []);
  assertEquals(def.validate?.(values) ?? [], []);
  return await def.create(values, {
    serverName: SERVER,
    log: logger(`ftp:${SERVER}`),
    maxConnections: opts.maxConnections ?? 4,
    timeoutMs: opts.timeoutMs ?? 10_000,
    sourceRoots: [],
    stateDir: e.tmp,
  });
}

async function readLocal(e: Env, p: string): Promise<Uint8Array | null> {
  try {
    return new Uint8Array(await fs.readFile(path.join(e.local, p)));
  } catch {
    return null;
  }
}

async function readText(e: Env, p: string): Promise<string | null> {
  const b = await readLocal(e, p);
  return b === null ? null : new TextDecoder().decode(b);
}

const signal = new AbortController().signal;

async function putText(t: Transport, e: Env, remote: string, text: string) {
  const local = path.join(e.tmp, crypto.randomUUID());
  await fs.writeFile(local, text);
  return await t.put(local, remote, { signal, size: Buffer.byteLength(text), unprocessed: false });
}

// ---------------------------------------------------------------------------

Deno.test("ftp passes the transport conformance suite (plain FTP)", async (t) => {
  const e = await env();
  try {
    await conformance(t, {
      transport: () => make(e),
      readBack: (p) => readLocal(e, p),
      urlPrefix: "https://cdn.example.com/files/",
    });
  } finally {
    await e.cleanup();
  }
});

Deno.test("ftp passes the transport conformance suite (explicit FTPS, ca pinned)", async (t) => {
  const e = await env();
  try {
    await conformance(t, {
      transport: () => make(e, { tls: "explicit", ca: e.info.caPath }),
      readBack: (p) => readLocal(e, p),
      urlPrefix: "https://cdn.example.com/files/",
      largeSize: 2 * 1024 * 1024 + 7,
    });
  } finally {
    await e.cleanup();
  }
});

Deno.test("ftp uploads are read back intact by rclone (an independent client, explicit FTPS)", async () => {
  const e = await env();
  const t = await make(e, { tls: "explicit", ca: e.info.caPath });
  try {
    const data = crypto.getRandomValues(new Uint8Array(65536));
    const local = path.join(e.tmp, "r.bin");
    await fs.writeFile(local, data);
    await t.put(local, "rc/dir with space/r.bin", {
      signal,
      size: data.length,
      unprocessed: false,
    });
    const obscured = new TextDecoder().decode(
      (await new Deno.Command("rclone", { args: ["obscure", e.info.password] }).output()).stdout,
    ).trim();
    const remote = `:ftp,host=${e.info.host},port=${e.info.port},user=${e.info.username},` +
      `pass=${obscured},explicit_tls=true:`;
    const out = await new Deno.Command("rclone", {
      args: ["cat", `${remote}${e.dir}/rc/dir with space/r.bin`],
      // Go's TLS trusts the server's self-signed certificate through SSL_CERT_FILE.
      env: { RCLONE_CONFIG: "/dev/null", SSL_CERT_FILE: e.info.caPath },
      stderr: "piped",
    }).output();
    assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
    assertEquals(
      createHash("sha256").update(out.stdout).digest("hex"),
      createHash("sha256").update(data).digest("hex"),
    );
  } finally {
    await t.close();
    await e.cleanup();
  }
});

Deno.test("ftp speaks implicit FTPS", async () => {
  const e = await env();
  assert(e.info.implicitPort !== null, "the test server offers no implicit FTPS port");
  const t = await make(e, {
    tls: "implicit",
    port: String(e.info.implicitPort),
    ca: e.info.caPath,
  });
  try {
    await putText(t, e, "imp/a.txt", "implicit");
    assertEquals(await readText(e, "imp/a.txt"), "implicit");
  } finally {
    await t.close();
    await e.cleanup();
  }
});

Deno.test("ftp refuses an untrusted certificate and shows how to trust it", async () => {
  const e = await env();
  const t = await make(e, { tls: "explicit" }, { timeoutMs: 5000 });
  try {
    const err = await assertRejects(() => putText(t, e, "x.txt", "x"), ClassifiedError);
    assertEquals((err as ClassifiedError).kind, "auth");
    assertIncludes(err.message, `TLS certificate of ${e.info.host}:${e.info.port} is not trusted`);
    assertIncludes(err.message, `tls_fingerprint to "${e.info.certFingerprint}"`);
    assertIncludes(err.message, "set ca");
    assert(!err.message.includes(e.info.password));
    assertEquals(await readLocal(e, "x.txt"), null);
  } finally {
    await t.close();
    await e.cleanup();
  }
});

Deno.test("ftp skips certificate checks only when told to", async () => {
  const e = await env();
  const t = await make(e, { tls: "explicit", insecure_skip_verify: "true" });
  try {
    await putText(t, e, "insecure.txt", "ok");
    assertEquals(await readText(e, "insecure.txt"), "ok");
  } finally {
    await t.close();
    await e.cleanup();
  }
});

Deno.test("ftp accepts a pinned certificate fingerprint and refuses a wrong one", async () => {
  const e = await env();
  try {
    const bare = e.info.certFingerprint.replaceAll(":", "").toLowerCase();
    for (const fp of [e.info.certFingerprint, bare]) {
      const t = await make(e, { tls: "explicit", tls_fingerprint: fp });
      try {
        await putText(t, e, "pin.txt", fp);
        assertEquals(await readText(e, "pin.txt"), fp);
        // Listing uses a data connection too, checked against the pin as well.
        assert(isLister(t));
        const seen: string[] = [];
        for await (const f of t.list("", { signal })) seen.push(f.path);
        assertEquals(seen, ["pin.txt"]);
      } finally {
        await t.close();
      }
    }
    const wrong = "AB:".repeat(31) + "AB";
    const t = await make(e, { tls: "explicit", tls_fingerprint: wrong });
    try {
      const err = await assertRejects(() => putText(t, e, "bad.txt", "x"), ClassifiedError);
      assertEquals((err as ClassifiedError).kind, "auth");
      assertIncludes(err.message, `does not match tls_fingerprint "${wrong}"`);
      assertIncludes(err.message, e.info.certFingerprint);
    } finally {
      await t.close();
    }
  } finally {
    await e.cleanup();
  }
});

Deno.test("ftp reports a wrong password as an auth error without the password", async () => {
  const e = await env();
  const secret = "Wr0ng-" + crypto.randomUUID();
  const t = await make(e, { password: secret }, { timeoutMs: 5000 });
  try {
    const err = await assertRejects(() => putText(t, e, "x.txt", "x"), ClassifiedError);
    assertEquals((err as ClassifiedError).kind, "auth");
    assertIncludes(err.message, `Cannot upload "x.txt" to server "${SERVER}": cannot log in as`);
    assertIncludes(err.message, "530");
    assert(!err.message.includes(secret), `password leaked: ${err.message}`);
  } finally {
    await t.close();
    await e.cleanup();
  }
});

Deno.test("ftp classifies a permission problem with one path as fatal", async () => {
  const e = await env();
  const t = await make(e);
  try {
    await putText(t, e, "ok.txt", "fine");
    await fs.mkdir(path.join(e.local, "locked"), { mode: 0o755 });
    await fs.chown(path.join(e.local, "locked"), 0, 0);
    // Several times over: the server refuses with 550 and resets the data connection it had
    // queued; which of the two the client sees first varies, and the reply must always win.
    for (let i = 0; i < 10; i++) {
      const err = await assertRejects(() => putText(t, e, "locked/a.css", "x"), ClassifiedError);
      assertEquals((err as ClassifiedError).kind, "fatal", err.message);
      assertIncludes(err.message, `Cannot upload "locked/a.css" to server "${SERVER}"`);
      assertIncludes(err.message.toLowerCase(), "permission denied");
    }
    await putText(t, e, "ok2.txt", "still fine");
    assertEquals(await readText(e, "ok2.txt"), "still fine");
  } finally {
    await t.close();
    await e.cleanup();
  }
});

Deno.test("ftp put leaves no temp file behind when the local file is missing", async () => {
  const e = await env();
  const t = await make(e);
  try {
    await putText(t, e, "keep/a.txt", "old");
    const err = await assertRejects(
      () =>
        t.put(path.join(e.tmp, "missing"), "keep/a.txt", { signal, size: 3, unprocessed: false }),
      ClassifiedError,
    );
    assertEquals((err as ClassifiedError).kind, "retry", err.message);
    assertEquals(await readText(e, "keep/a.txt"), "old");
    assertEquals(await fs.readdir(path.join(e.local, "keep")), ["a.txt"]);
    // Line breaks cannot be sent in FTP commands.
    const bad = await assertRejects(() => putText(t, e, "a\r\nDELE x", "x"), ClassifiedError);
    assertEquals((bad as ClassifiedError).kind, "fatal");
  } finally {
    await t.close();
    await e.cleanup();
  }
});

Deno.test("ftp uses an absolute path setting and reports mtimes", async () => {
  const e = await env();
  const t = await make(e, { path: `/${e.dir}/abs/` });
  try {
    await putText(t, e, "d/one.txt", "1");
    await putText(t, e, "d/e/two.txt", "22");
    assertEquals(await readText(e, "abs/d/e/two.txt"), "22");
    assert(isLister(t) && isStater(t));
    const seen: Record<string, number> = {};
    for await (const f of t.list("", { signal })) {
      seen[f.path] = f.size;
      assert(Math.abs(f.mtimeMs! - Date.now()) < 120_000, "MLSD mtime is recent");
    }
    assertEquals(seen, { "d/one.txt": 1, "d/e/two.txt": 2 });
    assertEquals((await t.stat("d/e/two.txt", { signal }))?.size, 2);
    assertEquals(await t.stat("d", { signal }), null, "a directory is not a file");
  } finally {
    await t.close();
    await e.cleanup();
  }
});

Deno.test("ftp recovers when the server goes away and comes back", async () => {
  const e = await env();
  const proxy = TcpProxy.start(e.info.port);
  const t = await make(e, { port: String(proxy.port) }, { timeoutMs: 3000, maxConnections: 2 });
  try {
    await putText(t, e, "r/1.txt", "one");
    proxy.cut();
    await putText(t, e, "r/2.txt", "two");
    proxy.down();
    const err = await assertRejects(() => putText(t, e, "r/3.txt", "three"), ClassifiedError);
    assertEquals((err as ClassifiedError).kind, "server");
    assertIncludes(err.message, `server "${SERVER}"`);
    proxy.up();
    await putText(t, e, "r/3.txt", "three");
    assertEquals(await readText(e, "r/1.txt"), "one");
    assertEquals(await readText(e, "r/2.txt"), "two");
    assertEquals(await readText(e, "r/3.txt"), "three");
  } finally {
    await t.close();
    proxy.close();
    await e.cleanup();
  }
});

Deno.test("ftp times out against a server that never answers", async () => {
  const e = await env();
  const proxy = TcpProxy.start(e.info.port);
  proxy.blackhole = true;
  const t = await make(e, { port: String(proxy.port) }, { timeoutMs: 400 });
  try {
    const started = performance.now();
    const err = await assertRejects(() => putText(t, e, "t.txt", "x"), ClassifiedError);
    assertEquals((err as ClassifiedError).kind, "server");
    assertIncludes(err.message.toLowerCase(), "timeout");
    assert(performance.now() - started < 5000, "gave up in time");
  } finally {
    await t.close();
    proxy.close();
    await e.cleanup();
  }
});

Deno.test("ftp keeps small uploads fast (TCP_NODELAY)", async () => {
  const e = await env();
  const t = await make(e, {}, { maxConnections: 1 });
  try {
    await putText(t, e, "warm.txt", "x");
    const started = performance.now();
    for (let i = 0; i < 20; i++) await putText(t, e, `fast/${i}.txt`, "x");
    const ms = performance.now() - started;
    // 5-9 ms each here (14-20 ms with Nagle's algorithm left on): a smoke
    // check against gross regressions such as a reconnect per file.
    assert(ms < 3000, `20 small uploads took ${Math.round(ms)} ms`);
  } finally {
    await t.close();
    await e.cleanup();
  }
});

Deno.test("ftp helpers: fingerprints and session-reuse replies", () => {
  const hex = "2e3c19fa9e39f8950d2c9c8ca7ce0d4c4cbd4059565e85954033a217fcc19fa7";
  const want = hex.toUpperCase().match(/../g)!.join(":");
  assertEquals(normalizeCertFingerprint(hex), want);
  assertEquals(normalizeCertFingerprint("SHA256:" + want), want);
  assertEquals(normalizeCertFingerprint("abc"), undefined);
  assert(isSessionReuseRefusal(522, "522 SSL connection failed: session reuse required"));
  assert(
    isSessionReuseRefusal(425, "425 Unable to build data connection: Operation not permitted"),
  );
  assert(
    isSessionReuseRefusal(
      425,
      "425 Unable to build data connection: TLS session of data connection not resumed.",
    ),
  );
  assert(!isSessionReuseRefusal(425, "425 Can't open data connection"));
  assert(!isSessionReuseRefusal(550, "550 Permission denied"));
});

Deno.test("ftp settings are validated without connecting", () => {
  const def = getTransportDef("ftp")!;
  const base = { host: "h", username: "u", password: "p", url: "https://x/" };
  const { values, problems } = checkOptions(def.options, base);
  assertEquals(problems, []);
  assertEquals(values.tls, "none");
  assertEquals(def.validate!(values), []);
  assertEquals(
    checkOptions(def.options, { host: "h", username: "u", url: "https://x/" }).problems.map((p) =>
      p.name
    ),
    ["password"],
  );
  assertIncludes(def.validate!({ ...base, passive: "false" }).join(), "passive");
  assertIncludes(def.validate!({ ...base, ca: "/x.pem" }).join(), `"ca" needs tls`);
  assertIncludes(
    def.validate!({ ...base, tls: "explicit", tls_fingerprint: "zz" }).join(),
    "tls_fingerprint",
  );
  assertIncludes(
    checkOptions(def.options, { ...base, tls: "starttls" }).problems.map((p) => p.message).join(),
    "must be one of",
  );
  assertEquals(def.options.filter((o) => o.secret).map((o) => o.name), ["password"]);
});

Deno.test("ftp create() refuses bad values before connecting, naming the server and setting", async () => {
  const def = getTransportDef("ftp")!;
  const ctx = {
    serverName: "bad-ftp",
    log: logger("test"),
    maxConnections: 1,
    timeoutMs: 1000,
    sourceRoots: [],
    stateDir: Deno.makeTempDirSync(),
  };
  const base = { host: "h", username: "u", password: "p", url: "https://x/" };
  for (
    const [values, expected] of [
      [{ ...base, port: "twenty-one" }, `"port" must be a whole number`],
      [{ ...base, insecure_skip_verify: "maybe" }, "must be true or false"],
      [{ ...base, passive: "no" }, "passive"],
    ] as const
  ) {
    const err = await assertRejects(
      () => def.create(values, ctx),
      ClassifiedError,
    ) as ClassifiedError;
    assertEquals(err.kind, "fatal");
    assertIncludes(err.message, `server "bad-ftp"`);
    assertIncludes(err.message, expected);
  }
});
