/**
 * Explicit FTPS against servers that require every data connection to
 * resume the control connection's TLS session: ProFTPD with its default
 * TLS options (scripts/dev-servers/ftp.sh, `reusePort`) and vsftpd with
 * `require_ssl_reuse=YES` (scripts/dev-servers/vsftpd.sh). Deno's TLS cannot
 * resume a session; the transport switches such a server to the system's
 * OpenSSL after the first refusal. What arrived is read back with curl, a
 * client nobody on this project wrote.
 */
import { Buffer } from "node:buffer";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs/promises";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { Readable } from "node:stream";
import { ClassifiedError } from "../../src/errors.ts";
import "../../src/transports/ftp.ts";
import { logger, onLog } from "../../src/log.ts";
import { checkOptions } from "../../src/options.ts";
import {
  connectImplicit,
  openSslContext,
  passiveResumingTransfer,
  SslSocket,
  upgradeExplicit,
} from "../../src/transports/ftp/_tls_resume.ts";
import {
  getTransportDef,
  isLister,
  isMover,
  isStater,
  type Transport,
} from "../../src/transports/transport.ts";
import { startServer } from "../_servers.ts";
import { assert, assertEquals, assertIncludes, assertRejects } from "../_assert.ts";
import { conformance } from "./_conformance.ts";
import { Client } from "basic-ftp";

const SERVER = "test-ftps";
const signal = new AbortController().signal;

/** One FTPS server that requires session reuse. */
interface Target {
  label: string;
  host: string;
  port: number;
  username: string;
  password: string;
  root: string;
  caPath: string;
  certFingerprint: string;
  /** Where the server logs that a data connection resumed the session. */
  log: string;
  /** Text of that log line. */
  reusedLine: RegExp;
  /** Text of the log line for a data connection refused for not resuming. */
  refusedLine: RegExp;
}

async function proftpd(): Promise<Target> {
  const i = await startServer("ftp");
  return {
    label: "ProFTPD (default TLS options)",
    ...i,
    port: i.reusePort,
    log: path.join(path.dirname(i.caPath), "tls.log"),
    reusedLine: /client reused TLS session for data connection/,
    refusedLine: /client did not reuse TLS session/,
  };
}

async function vsftpd(): Promise<Target> {
  const i = await startServer("vsftpd");
  return {
    label: "vsftpd (require_ssl_reuse=YES)",
    ...i,
    log: path.join(path.dirname(i.caPath), "vsftpd.log"),
    reusedLine: /SSL cipher: [^"]*, reused/,
    refusedLine: /session reuse required/,
  };
}

interface Env {
  target: Target;
  dir: string;
  local: string;
  tmp: string;
  cleanup(): Promise<void>;
}

async function env(target: Target): Promise<Env> {
  const dir = `fc-ftps-${crypto.randomUUID().slice(0, 8)}`;
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), "fc-ftps-test-"));
  return {
    target,
    dir,
    local: path.join(target.root, dir),
    tmp,
    cleanup: async () => {
      await fs.rm(path.join(target.root, dir), { recursive: true, force: true });
      await fs.rm(tmp, { recursive: true, force: true });
    },
  };
}

async function make(e: Env, settings: Record<string, string> = {}): Promise<Transport> {
  const def = getTransportDef("ftp")!;
  const { values, problems } = checkOptions(def.options, {
    host: e.target.host,
    port: String(e.target.port),
    username: e.target.username,
    password: e.target.password,
    url: "https://cdn.example.com/files",
    path: e.dir,
    tls: "explicit",
    ca: e.target.caPath,
    ...settings,
  });
  assertEquals(problems, []);
  assertEquals(def.validate?.(values) ?? [], []);
  return await def.create(values, {
    serverName: SERVER,
    log: logger(`ftp:${SERVER}`),
    maxConnections: 3,
    timeoutMs: 10_000,
    sourceRoots: [],
    stateDir: e.tmp,
  });
}

async function put(t: Transport, e: Env, remote: string, data: Uint8Array): Promise<void> {
  const local = path.join(e.tmp, crypto.randomUUID());
  await fs.writeFile(local, data);
  await t.put(local, remote, { signal, size: data.length, unprocessed: false });
}

/** curl --ssl-reqd: downloads one file (null when missing) or lists a directory. */
async function curl(e: Env, remote: string): Promise<Uint8Array | null> {
  const url = `ftp://${e.target.host}:${e.target.port}/${e.dir}/${remote}`;
  const out = await new Deno.Command("curl", {
    args: [
      "-sS",
      "--max-time",
      "20",
      "--ssl-reqd",
      "--cacert",
      e.target.caPath,
      "--netrc-file",
      "/dev/stdin",
      url,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = out.stdin.getWriter();
  await w.write(
    new TextEncoder().encode(
      `machine ${e.target.host} login ${e.target.username} password ${e.target.password}\n`,
    ),
  );
  await w.close();
  const res = await out.output();
  if (res.code === 78 || res.code === 9) return null; // "remote file not found" / "access denied"
  assertEquals(res.code, 0, `curl ${url}: ${new TextDecoder().decode(res.stderr)}`);
  return res.stdout;
}

async function logLength(file: string): Promise<number> {
  return (await fs.stat(file).catch(() => ({ size: 0 }))).size;
}

async function logSince(file: string, offset: number): Promise<string> {
  const all = await fs.readFile(file);
  return all.subarray(offset).toString("utf8");
}

for (const server of [proftpd, vsftpd]) {
  Deno.test(`ftps: upload, list, rename and delete on a server that requires TLS session reuse: ${server.name}`, async () => {
    const target = await server();
    const e = await env(target);
    const infos: string[] = [];
    const stop = onLog((r) => {
      if (r.component === `ftp:${SERVER}`) infos.push(r.message);
    });
    const before = await logLength(target.log);
    const t = await make(e);
    try {
      const big = new Uint8Array(randomBytes(3 * 1024 * 1024 + 11));
      const small = new TextEncoder().encode("héllo, ñandú\n");
      await put(t, e, "a/big.bin", big);
      await put(t, e, "a/b/small.txt", small);
      await put(t, e, "gone.txt", small);
      assert(isLister(t) && isMover(t) && isStater(t));
      const listed: Record<string, number> = {};
      for await (const f of t.list("", { signal })) listed[f.path] = f.size;
      assertEquals(listed, {
        "a/big.bin": big.length,
        "a/b/small.txt": small.length,
        "gone.txt": small.length,
      });
      await t.move("a/b/small.txt", "c/renamed.txt", { signal });
      await t.delete("gone.txt", { signal });
      assertEquals((await t.stat("c/renamed.txt", { signal }))?.size, small.length);
      assertEquals(await t.stat("gone.txt", { signal }), null);

      // An independent client sees exactly that.
      assertEquals(Buffer.from((await curl(e, "a/big.bin"))!).equals(Buffer.from(big)), true);
      assertEquals(await curl(e, "c/renamed.txt"), small);
      assertEquals(await curl(e, "gone.txt"), null);
      assertEquals(await curl(e, "a/b/small.txt"), null);

      // The server logged resumed data connections, and the switch was said once.
      const log = await logSince(target.log, before);
      assert(target.reusedLine.test(log), `no resumed data connection in ${target.log}`);
      const switched = infos.filter((m) =>
        m.includes("resume the control connection's TLS session")
      );
      assertEquals(switched.length, 1, infos.join("\n"));
      assertIncludes(switched[0]!, "OpenSSL");
      assert(target.refusedLine.test(log), "the first transfer was not refused: no switch tested");

      // The next run (same state directory) starts with OpenSSL: nothing is refused.
      await t.close();
      infos.length = 0;
      const before2 = await logLength(target.log);
      const again = await make(e);
      try {
        await put(again, e, "again.txt", small);
        assertEquals(await curl(e, "again.txt"), small);
      } finally {
        await again.close();
      }
      const log2 = await logSince(target.log, before2);
      assert(!target.refusedLine.test(log2), `a transfer was refused again:\n${log2}`);
      assert(target.reusedLine.test(log2), `no resumed data connection in ${target.log}`);
      assertEquals(infos.filter((m) => m.includes("now use")), []);
    } finally {
      stop();
      await t.close();
      await e.cleanup();
    }
  });

  Deno.test(`ftps: conformance suite over resumed TLS sessions: ${server.name}`, async (t) => {
    const target = await server();
    const e = await env(target);
    try {
      await conformance(t, {
        transport: () => make(e),
        readBack: async (p) => {
          try {
            return new Uint8Array(await fs.readFile(path.join(e.local, p)));
          } catch {
            return null;
          }
        },
        urlPrefix: "https://cdn.example.com/files/",
        largeSize: 2 * 1024 * 1024 + 7,
      });
    } finally {
      await e.cleanup();
    }
  });
}

Deno.test("ftps: a pinned certificate is checked on resumed connections too", async () => {
  const target = await vsftpd();
  const e = await env(target);
  const good = await make(e, { ca: "", tls_fingerprint: target.certFingerprint });
  try {
    await put(good, e, "pinned.txt", new TextEncoder().encode("pinned"));
    assertEquals(await curl(e, "pinned.txt"), new TextEncoder().encode("pinned"));
  } finally {
    await good.close();
    await e.cleanup();
  }
});

/** AUTH TLS on a plain basic-ftp connection, then the OpenSSL handshake with `host`. */
async function handshake(target: Target, host: string, caFile: string | undefined) {
  const ctx = openSslContext({ ...(caFile ? { caFile } : {}), verify: true });
  if (typeof ctx === "string") throw new Error(ctx);
  const client = new Client(10_000);
  try {
    await client.connect(target.host, target.port);
    return await upgradeExplicit(client, ctx, host);
  } finally {
    client.close();
    ctx.free();
  }
}

Deno.test("ftps over OpenSSL verifies the certificate chain and the host name", async () => {
  const target = await vsftpd();
  const other = await proftpd();
  // The right CA, the right address: accepted.
  const ok = await handshake(target, "127.0.0.1", target.caPath);
  assert(ok instanceof SslSocket);
  // The name in the certificate works as well as its IP address.
  await handshake(target, "localhost", target.caPath);
  // A certificate from another CA (the system store or another server's): refused.
  for (const ca of [undefined, other.caPath]) {
    const err = await assertRejects(() => handshake(target, "127.0.0.1", ca));
    assertIncludes(err.message, "certificate verify failed");
  }
  // The right CA, a name the certificate is not for: refused.
  for (const wrong of ["files.example.com", "127.0.0.2"]) {
    const err = await assertRejects(() => handshake(target, wrong, target.caPath));
    assertIncludes(err.message, "certificate verify failed");
    assertIncludes(err.message, "mismatch");
  }
});

Deno.test("ftps explains the server setting when OpenSSL cannot be used (no --allow-ffi)", async () => {
  const target = await vsftpd();
  const e = await env(target);
  try {
    const child = path.join(import.meta.dirname!, "_ftps_child.ts");
    const settings = {
      host: target.host,
      port: String(target.port),
      username: target.username,
      password: target.password,
      url: "https://cdn.example.com/files",
      path: e.dir,
      tls: "explicit",
      ca: target.caPath,
    };
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        "--allow-read",
        "--allow-write",
        "--allow-net",
        "--allow-env",
        "--allow-sys",
        child,
        JSON.stringify(settings),
        e.tmp,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 0, stderr);
    const result = JSON.parse(new TextDecoder().decode(out.stdout)) as {
      error?: string;
      kind?: string;
    };
    assert(result.error !== undefined, "the upload succeeded without OpenSSL");
    assertEquals(result.kind, "server");
    assertIncludes(result.error, `Cannot upload "x.txt" to server "child"`);
    assertIncludes(result.error, "--allow-ffi");
    assertIncludes(result.error, "require_ssl_reuse=NO");
    assertIncludes(result.error, "TLSOptions NoSessionReuseRequired");
    assertIncludes(result.error, "522");
    assert(!result.error.includes(target.password), "the password leaked into the message");
    // The log said once why OpenSSL could not be used.
    assertIncludes(stderr, "needs the system's OpenSSL library");
  } finally {
    await e.cleanup();
  }
});

Deno.test("ftps over OpenSSL speaks implicit FTPS, with resumed data connections", async () => {
  const info = await startServer("ftp");
  assert(info.implicitPort !== null, "the test server offers no implicit FTPS port");
  const dir = `fc-ftps-imp-${crypto.randomUUID().slice(0, 8)}`;
  const ctx = openSslContext({ caFile: info.caPath, verify: true });
  if (typeof ctx === "string") throw new Error(ctx);
  const client = new Client(10_000);
  const before = await logLength(path.join(path.dirname(info.caPath), "tls.log"));
  try {
    const control = await connectImplicit(client, ctx, info.host, info.implicitPort);
    await client.login(info.username, info.password);
    await client.send("PBSZ 0");
    await client.send("PROT P");
    client.prepareTransfer = passiveResumingTransfer(control, ctx, info.host);
    await client.ensureDir(dir);
    await client.uploadFrom(Readable.from([Buffer.from("implicit")]), "a.txt");
    assertEquals((await client.list()).map((f) => f.name), ["a.txt"]);
    assertEquals(await fs.readFile(path.join(info.root, dir, "a.txt"), "utf8"), "implicit");
    const log = await logSince(path.join(path.dirname(info.caPath), "tls.log"), before);
    assert(/data connection accepted, using cipher [^\n]*resumed session/.test(log), log);
  } finally {
    client.close();
    ctx.free();
    await fs.rm(path.join(info.root, dir), { recursive: true, force: true });
  }
});

// A peer that closes during the handshake is an error, not a hang.
Deno.test("ftps over OpenSSL fails cleanly when the peer closes during the handshake", async () => {
  const server = net.createServer((s) => {
    s.once("data", () => s.destroy());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const ctx = openSslContext({ verify: true });
  if (typeof ctx === "string") throw new Error(ctx);
  try {
    const raw = net.connect(port, "127.0.0.1");
    const sock = new SslSocket(raw, { context: ctx, host: "127.0.0.1" });
    const err = await new Promise<Error>((resolve) => sock.once("error", resolve));
    assertIncludes(err.message, "TLS handshake failed");
    assert(err instanceof Error && !(err instanceof ClassifiedError));
  } finally {
    ctx.free();
    await new Promise<void>((r) => server.close(() => r()));
  }
});
