/**
 * The sftp transport against a real OpenSSH server (scripts/dev-servers/sftp.sh).
 * Every test uses its own directory below the login directory, so test files
 * can share the server.
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import {
  checkKnownHosts,
  md5Fingerprint,
  normalizeFingerprint,
  sha256Fingerprint,
} from "../../src/transports/sftp.ts";
import { ClassifiedError } from "../../src/errors.ts";
import { logger } from "../../src/log.ts";
import { checkOptions } from "../../src/options.ts";
import {
  getTransportDef,
  isLister,
  isStater,
  type Transport,
} from "../../src/transports/transport.ts";
import { type SftpInfo, startServer } from "../_servers.ts";
import { assert, assertEquals, assertIncludes, assertRejects } from "../_assert.ts";
import { TcpProxy } from "../_proxy.ts";
import { conformance } from "./_conformance.ts";

const SERVER = "test-sftp";

interface Env {
  info: SftpInfo;
  /** Remote root of this test, relative to the login directory. */
  dir: string;
  /** The same directory on the local disk. */
  local: string;
  tmp: string;
  cleanup(): Promise<void>;
}

async function env(): Promise<Env> {
  const info = await startServer("sftp");
  const dir = `fc-sftp-${crypto.randomUUID().slice(0, 8)}`;
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), "fc-sftp-test-"));
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
  settings: Record<string, string>,
  opts: { timeoutMs?: number; maxConnections?: number } = {},
): Promise<Transport> {
  const def = getTransportDef("sftp")!;
  const { values, problems } = checkOptions(def.options, {
    host: e.info.host,
    port: String(e.info.port),
    username: e.info.username,
    url: "https://cdn.example.com/static/",
    path: e.dir,
    known_hosts: e.info.knownHostsPath,
    ...settings,
  });
  assertEquals(problems, []);
  assertEquals(def.validate?.(values) ?? [], []);
  return await def.create(values, {
    serverName: SERVER,
    log: logger(`sftp:${SERVER}`),
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

const signal = new AbortController().signal;

async function putText(t: Transport, e: Env, remote: string, text: string) {
  const local = path.join(e.tmp, crypto.randomUUID());
  await fs.writeFile(local, text);
  return await t.put(local, remote, { signal, size: Buffer.byteLength(text), unprocessed: false });
}

async function hostKeyBlob(info: SftpInfo): Promise<Uint8Array> {
  const line = (await fs.readFile(info.knownHostsPath, "utf8")).trim().split("\n")[0]!;
  return new Uint8Array(Buffer.from(line.split(/\s+/)[2]!, "base64"));
}

// ---------------------------------------------------------------------------

Deno.test("sftp passes the transport conformance suite (password login)", async (t) => {
  const e = await env();
  try {
    await conformance(t, {
      transport: () => make(e, { password: e.info.password }),
      readBack: (p) => readLocal(e, p),
      urlPrefix: "https://cdn.example.com/static/",
    });
  } finally {
    await e.cleanup();
  }
});

Deno.test("sftp uploads are read back intact by rclone (an independent client)", async () => {
  const e = await env();
  const t = await make(e, { password: e.info.password });
  try {
    const data = new Uint8Array(300_000);
    crypto.getRandomValues(data.subarray(0, 65536));
    data.set(data.subarray(0, 65536), 65536);
    const local = path.join(e.tmp, "r.bin");
    await fs.writeFile(local, data);
    await t.put(local, "rc/ünï code/r.bin", { signal, size: data.length, unprocessed: false });
    const obscured = new TextDecoder().decode(
      (await new Deno.Command("rclone", { args: ["obscure", e.info.password] }).output()).stdout,
    ).trim();
    const remote = `:sftp,host=${e.info.host},port=${e.info.port},user=${e.info.username},` +
      `pass=${obscured},known_hosts_file=${e.info.knownHostsPath}:`;
    const out = await new Deno.Command("rclone", {
      args: ["cat", `${remote}${e.dir}/rc/ünï code/r.bin`],
      env: { RCLONE_CONFIG: "/dev/null" },
      stderr: "piped",
    }).output();
    assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
    assertEquals(out.stdout.length, data.length);
    assertEquals(
      createHash("sha256").update(out.stdout).digest("hex"),
      createHash("sha256").update(data).digest("hex"),
    );
  } finally {
    await t.close();
    await e.cleanup();
  }
});

Deno.test("sftp logs in with an ed25519 key and with an RSA key", async () => {
  const e = await env();
  try {
    for (const key of [e.info.keyPath, e.info.rsaKeyPath]) {
      const t = await make(e, { key, agent: "false" });
      try {
        await putText(t, e, "keys/k.txt", key);
        assertEquals(new TextDecoder().decode((await readLocal(e, "keys/k.txt"))!), key);
      } finally {
        await t.close();
      }
    }
  } finally {
    await e.cleanup();
  }
});

Deno.test("sftp logs in through ssh-agent when neither password nor key is set", async () => {
  const e = await env();
  const sock = path.join(e.tmp, "agent.sock");
  const agent = new Deno.Command("ssh-agent", {
    args: ["-D", "-a", sock],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const saved = Deno.env.get("SSH_AUTH_SOCK");
  try {
    for (let i = 0; i < 50 && !(await fs.stat(sock).catch(() => null)); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const add = await new Deno.Command("ssh-add", {
      args: [e.info.keyPath],
      env: { SSH_AUTH_SOCK: sock },
      stderr: "piped",
    }).output();
    assertEquals(add.code, 0, new TextDecoder().decode(add.stderr));
    Deno.env.set("SSH_AUTH_SOCK", sock);
    const t = await make(e, {});
    try {
      await putText(t, e, "agent.txt", "via agent");
      assertEquals(new TextDecoder().decode((await readLocal(e, "agent.txt"))!), "via agent");
    } finally {
      await t.close();
    }
  } finally {
    if (saved === undefined) Deno.env.delete("SSH_AUTH_SOCK");
    else Deno.env.set("SSH_AUTH_SOCK", saved);
    agent.kill("SIGTERM");
    await agent.status;
    await e.cleanup();
  }
});

Deno.test("sftp reports a wrong password as an auth error without the password", async () => {
  const e = await env();
  const secret = "Wr0ng-" + crypto.randomUUID();
  const t = await make(e, { password: secret }, { timeoutMs: 5000 });
  try {
    const err = await assertRejects(() => putText(t, e, "x.txt", "x"), ClassifiedError);
    assertEquals((err as ClassifiedError).kind, "auth");
    assertIncludes(err.message, `Cannot upload "x.txt" to server "${SERVER}": cannot log in as`);
    assertIncludes(err.message, "authentication failed (tried password)");
    assert(!err.message.includes(secret), `password leaked: ${err.message}`);
    assert(!String((err as Error).stack).includes(secret), "password leaked in the stack");
  } finally {
    await t.close();
    await e.cleanup();
  }
});

Deno.test("sftp refuses an unknown host key and shows its fingerprint", async () => {
  const e = await env();
  const empty = path.join(e.tmp, "known_hosts");
  await fs.writeFile(empty, "");
  const t = await make(e, { password: e.info.password, known_hosts: empty });
  try {
    const err = await assertRejects(() => putText(t, e, "x.txt", "x"), ClassifiedError);
    assertEquals((err as ClassifiedError).kind, "auth");
    assertIncludes(err.message, e.info.hostKeyFingerprint);
    assertIncludes(err.message, "unknown");
    assertIncludes(err.message, "host_key_fingerprint");
    assertIncludes(err.message, empty);
    assert(!err.message.includes(e.info.password));
    assertEquals(await readLocal(e, "x.txt"), null);
  } finally {
    await t.close();
    await e.cleanup();
  }
});

Deno.test("sftp refuses a host key that differs from known_hosts", async () => {
  const e = await env();
  const other = Buffer.concat([
    Buffer.from([0, 0, 0, 11]),
    Buffer.from("ssh-ed25519"),
    Buffer.from([0, 0, 0, 32]),
    Buffer.from(crypto.getRandomValues(new Uint8Array(32))),
  ]).toString("base64");
  const kh = path.join(e.tmp, "known_hosts");
  await fs.writeFile(kh, `[127.0.0.1]:${e.info.port} ssh-ed25519 ${other}\n`);
  const t = await make(e, { password: e.info.password, known_hosts: kh });
  try {
    const err = await assertRejects(() => putText(t, e, "x.txt", "x"), ClassifiedError);
    assertEquals((err as ClassifiedError).kind, "auth");
    assertIncludes(err.message, "does NOT match");
    assertIncludes(err.message, `${kh}" line 1`);
    assertIncludes(err.message, e.info.hostKeyFingerprint);
  } finally {
    await t.close();
    await e.cleanup();
  }
});

Deno.test("sftp accepts a hashed known_hosts entry", async () => {
  const e = await env();
  const kh = path.join(e.tmp, "known_hosts");
  await fs.copyFile(e.info.knownHostsPath, kh);
  const out = await new Deno.Command("ssh-keygen", { args: ["-H", "-f", kh], stderr: "piped" })
    .output();
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  assert((await fs.readFile(kh, "utf8")).startsWith("|1|"), "ssh-keygen -H should hash the entry");
  const t = await make(e, { password: e.info.password, known_hosts: kh });
  try {
    await putText(t, e, "h.txt", "hashed");
    assertEquals(new TextDecoder().decode((await readLocal(e, "h.txt"))!), "hashed");
  } finally {
    await t.close();
    await e.cleanup();
  }
});

Deno.test("sftp accepts a pinned host key fingerprint (SHA256 and MD5) and refuses a wrong one", async () => {
  const e = await env();
  const empty = path.join(e.tmp, "known_hosts");
  await fs.writeFile(empty, "");
  try {
    const md5 = md5Fingerprint(await hostKeyBlob(e.info));
    for (const fp of [e.info.hostKeyFingerprint, md5, md5.slice(4)]) {
      const t = await make(e, {
        password: e.info.password,
        known_hosts: empty,
        host_key_fingerprint: fp,
      });
      try {
        await putText(t, e, "pin.txt", fp);
      } finally {
        await t.close();
      }
    }
    const wrong = sha256Fingerprint(crypto.getRandomValues(new Uint8Array(51)));
    const t = await make(e, { password: e.info.password, host_key_fingerprint: wrong });
    try {
      const err = await assertRejects(() => putText(t, e, "bad.txt", "x"), ClassifiedError);
      assertEquals((err as ClassifiedError).kind, "auth");
      assertIncludes(err.message, `does not match host_key_fingerprint "${wrong}"`);
      assertIncludes(err.message, e.info.hostKeyFingerprint);
    } finally {
      await t.close();
    }
  } finally {
    await e.cleanup();
  }
});

Deno.test("sftp skips host key checks only when told to, loudly", async () => {
  const e = await env();
  const empty = path.join(e.tmp, "known_hosts");
  await fs.writeFile(empty, "");
  const t = await make(e, {
    password: e.info.password,
    known_hosts: empty,
    insecure_skip_host_key_check: "true",
  });
  try {
    await putText(t, e, "insecure.txt", "ok");
    assertEquals(new TextDecoder().decode((await readLocal(e, "insecure.txt"))!), "ok");
  } finally {
    await t.close();
    await e.cleanup();
  }
});

Deno.test("sftp classifies a permission problem with one path as fatal", async () => {
  const e = await env();
  const t = await make(e, { password: e.info.password });
  try {
    await putText(t, e, "ok.txt", "fine");
    // A directory owned by root: the test user cannot write into it.
    await fs.mkdir(path.join(e.local, "locked"), { mode: 0o755 });
    await fs.chown(path.join(e.local, "locked"), 0, 0);
    const err = await assertRejects(() => putText(t, e, "locked/a.css", "x"), ClassifiedError);
    assertEquals((err as ClassifiedError).kind, "fatal");
    assertIncludes(
      err.message,
      `Cannot upload "locked/a.css" to server "${SERVER}": permission denied (cannot create "`,
    );
    assert(/\/locked" is not writable/.test(err.message), err.message);
    // A directory that cannot be created, and a file that cannot be deleted, say so too.
    const sub = await assertRejects(() => putText(t, e, "locked/sub/b.css", "x"), ClassifiedError);
    assert(
      /permission denied \(cannot create directory "[^"]*\/locked\/sub": "[^"]*\/locked" is not writable/
        .test(sub.message),
      sub.message,
    );
    await fs.writeFile(path.join(e.local, "locked", "old.css"), "x");
    const del = await assertRejects(() => t.delete("locked/old.css", { signal }), ClassifiedError);
    assertIncludes(del.message, `Cannot delete "locked/old.css" from server "${SERVER}"`);
    assert(/cannot delete "[^"]*\/locked\/old\.css"/.test(del.message), del.message);
    // The connection is still usable afterwards.
    await putText(t, e, "ok2.txt", "still fine");
    assertEquals(new TextDecoder().decode((await readLocal(e, "ok2.txt"))!), "still fine");
  } finally {
    await t.close();
    await e.cleanup();
  }
});

Deno.test("sftp put leaves no temp file behind when the local file is missing or the signal aborts", async () => {
  const e = await env();
  const t = await make(e, { password: e.info.password });
  try {
    await putText(t, e, "keep/a.txt", "old");
    const err = await assertRejects(
      () =>
        t.put(path.join(e.tmp, "missing"), "keep/a.txt", { signal, size: 3, unprocessed: false }),
      ClassifiedError,
    );
    assertEquals((err as ClassifiedError).kind, "retry");
    const local = path.join(e.tmp, "new.txt");
    await fs.writeFile(local, "new");
    await assertRejects(() =>
      t.put(local, "keep/a.txt", { signal: AbortSignal.abort(), size: 3, unprocessed: false })
    );
    assertEquals(new TextDecoder().decode((await readLocal(e, "keep/a.txt"))!), "old");
    assertEquals(await fs.readdir(path.join(e.local, "keep")), ["a.txt"]);
  } finally {
    await t.close();
    await e.cleanup();
  }
});

Deno.test("sftp put cut off mid-write leaves the old file whole at the final name", async () => {
  const e = await env();
  const proxy = TcpProxy.start(e.info.port);
  const t = await make(e, {
    password: e.info.password,
    port: String(proxy.port),
    host_key_fingerprint: e.info.hostKeyFingerprint,
  }, { timeoutMs: 10_000, maxConnections: 1 });
  try {
    await putText(t, e, "big/a.bin", "old");
    // Large enough to be streamed in many writes, so the cut lands mid-file.
    const local = path.join(e.tmp, "big.bin");
    const size = 64 * 1024 * 1024;
    await fs.writeFile(local, new Uint8Array(size).fill(7));
    const dir = path.join(e.local, "big");
    const put = t.put(local, "big/a.bin", { signal, size, unprocessed: false });
    // Take the server away once the temp file holds part of the content (a cut
    // alone would be retried on a new connection).
    let cut = false;
    for (let i = 0; i < 2000 && !cut; i++) {
      for (const name of await fs.readdir(dir)) {
        if (name === "a.bin") continue;
        const st = await fs.stat(path.join(dir, name)).catch(() => undefined);
        if (st && st.size > 0 && st.size < size) {
          proxy.down();
          cut = true;
        }
      }
      if (!cut) await new Promise((r) => setTimeout(r, 5));
    }
    assert(cut, "saw the upload in progress");
    const err = await assertRejects(() => put, ClassifiedError);
    assertEquals((err as ClassifiedError).kind, "server");
    // Readers of the final name still see the old content, never a part of the new.
    assertEquals(new TextDecoder().decode((await readLocal(e, "big/a.bin"))!), "old");
    // Once the server is back, the next put replaces it whole.
    proxy.up();
    await t.put(local, "big/a.bin", { signal, size, unprocessed: false });
    assertEquals((await fs.stat(path.join(dir, "a.bin"))).size, size);
  } finally {
    await t.close();
    proxy.close();
    await e.cleanup();
  }
});

Deno.test("sftp uses an absolute path setting and lists with sizes", async () => {
  const e = await env();
  const t = await make(e, { password: e.info.password, path: e.local + "/abs/" });
  try {
    await putText(t, e, "d/one.txt", "1");
    await putText(t, e, "d/e/two.txt", "22");
    assertEquals(new TextDecoder().decode((await readLocal(e, "abs/d/e/two.txt"))!), "22");
    assert(isLister(t) && isStater(t));
    const seen: Record<string, number> = {};
    for await (const f of t.list("", { signal })) seen[f.path] = f.size;
    assertEquals(seen, { "d/one.txt": 1, "d/e/two.txt": 2 });
    const st = await t.stat("d/e/two.txt", { signal });
    assertEquals(st?.size, 2);
    assert(Math.abs(st!.mtimeMs! - Date.now()) < 120_000, "mtime is recent");
    assertEquals(await t.stat("d", { signal }), null, "a directory is not a file");
  } finally {
    await t.close();
    await e.cleanup();
  }
});

Deno.test("sftp recovers when the server goes away and comes back", async () => {
  const e = await env();
  const proxy = TcpProxy.start(e.info.port);
  const t = await make(e, {
    password: e.info.password,
    port: String(proxy.port),
    host_key_fingerprint: e.info.hostKeyFingerprint,
  }, { timeoutMs: 3000, maxConnections: 2 });
  try {
    await putText(t, e, "r/1.txt", "one");
    // The server drops every connection but is back at once: the stale pooled
    // connection is discarded and the put succeeds on a new one.
    proxy.cut();
    await putText(t, e, "r/2.txt", "two");
    // The server is down: the put fails as a server problem.
    proxy.down();
    const err = await assertRejects(() => putText(t, e, "r/3.txt", "three"), ClassifiedError);
    assertEquals((err as ClassifiedError).kind, "server");
    assertIncludes(err.message, `server "${SERVER}"`);
    // It is back: the next put succeeds.
    proxy.up();
    await putText(t, e, "r/3.txt", "three");
    for (const [p, v] of [["r/1.txt", "one"], ["r/2.txt", "two"], ["r/3.txt", "three"]]) {
      assertEquals(new TextDecoder().decode((await readLocal(e, p!))!), v);
    }
  } finally {
    await t.close();
    proxy.close();
    await e.cleanup();
  }
});

Deno.test("sftp times out against a server that never answers", async () => {
  const e = await env();
  const proxy = TcpProxy.start(e.info.port);
  proxy.blackhole = true;
  const t = await make(e, { password: e.info.password, port: String(proxy.port) }, {
    timeoutMs: 400,
  });
  try {
    const started = performance.now();
    const err = await assertRejects(() => putText(t, e, "t.txt", "x"), ClassifiedError);
    assertEquals((err as ClassifiedError).kind, "server");
    assertIncludes(err.message, "timed out");
    assert(performance.now() - started < 5000, "gave up in time");
  } finally {
    await t.close();
    proxy.close();
    await e.cleanup();
  }
});

Deno.test("sftp runs several uploads on one session, each file whole at its name", async () => {
  const e = await env();
  // One session: the 12 uploads share it at once (up to 16: the transport's transfers per session).
  const t = await make(e, { password: e.info.password }, { maxConnections: 1 });
  try {
    const sizes = Array.from({ length: 12 }, (_, i) => [100, 5000, 70_000, 300_000][i % 4]!);
    const results = await Promise.all(sizes.map(async (size, i) => {
      const local = path.join(e.tmp, `lane-${i}`);
      await fs.writeFile(local, new Uint8Array(size).fill(97 + i));
      return await t.put(local, `lanes/${i % 3}/f${i}`, { signal, size, unprocessed: false });
    }));
    assertEquals(results.map((r) => r.size), sizes);
    for (const [i, size] of sizes.entries()) {
      const got = await fs.readFile(path.join(e.local, "lanes", String(i % 3), `f${i}`));
      assertEquals(got.length, size);
      assert(got.every((b) => b === 97 + i), `f${i} holds another file's bytes`);
    }
    // The MD5 of a file read into memory is that of the bytes sent.
    const small = results[1]!;
    assertEquals(
      small.md5,
      createHash("md5").update(new Uint8Array(5000).fill(98)).digest("hex"),
    );
  } finally {
    await t.close();
    await e.cleanup();
  }
});

Deno.test("sftp keeps small uploads fast (TCP_NODELAY)", async () => {
  const e = await env();
  const t = await make(e, { password: e.info.password }, { maxConnections: 1 });
  try {
    await putText(t, e, "warm.txt", "x"); // connect first
    const started = performance.now();
    for (let i = 0; i < 20; i++) await putText(t, e, `fast/${i}.txt`, "x");
    const ms = performance.now() - started;
    // ~3 ms each here; with Nagle's algorithm on, each round trip costs ~40 ms more.
    assert(ms < 2000, `20 small uploads took ${Math.round(ms)} ms`);
  } finally {
    await t.close();
    await e.cleanup();
  }
});

Deno.test("checkKnownHosts() understands patterns, ports, negation and @revoked", () => {
  const blob = new Uint8Array(Buffer.concat([
    Buffer.from([0, 0, 0, 11]),
    Buffer.from("ssh-ed25519"),
    Buffer.from([0, 0, 0, 4]),
    Buffer.from("abcd"),
  ]));
  const key = Buffer.from(blob).toString("base64");
  const other = Buffer.from("other").toString("base64");
  assertEquals(
    checkKnownHosts(`example.com ssh-ed25519 ${key}`, "example.com", 22, blob).status,
    "match",
  );
  assertEquals(
    checkKnownHosts(`example.com ssh-ed25519 ${key}`, "example.com", 2222, blob).status,
    "unknown",
  );
  assertEquals(
    checkKnownHosts(`[example.com]:2222 ssh-ed25519 ${key}`, "example.com", 2222, blob).status,
    "match",
  );
  assertEquals(
    checkKnownHosts(`*.example.com,!bad.example.com ssh-ed25519 ${key}`, "a.example.com", 22, blob)
      .status,
    "match",
  );
  assertEquals(
    checkKnownHosts(
      `*.example.com,!bad.example.com ssh-ed25519 ${key}`,
      "bad.example.com",
      22,
      blob,
    ).status,
    "unknown",
  );
  const mismatch = checkKnownHosts(
    `# c\n\nexample.com ssh-ed25519 ${other}`,
    "example.com",
    22,
    blob,
  );
  assertEquals(mismatch.status, "mismatch");
  assertEquals(mismatch.line, 3);
  // Another key type for the host is not a mismatch, but is reported.
  const otherType = checkKnownHosts(`example.com ssh-rsa ${other}`, "Example.COM", 22, blob);
  assertEquals(otherType, { status: "unknown", knownTypes: ["ssh-rsa"] });
  assertEquals(
    checkKnownHosts(
      `@revoked * ssh-ed25519 ${key}\nexample.com ssh-ed25519 ${key}`,
      "example.com",
      22,
      blob,
    ).status,
    "revoked",
  );
  assertEquals(
    checkKnownHosts(`@cert-authority * ssh-ed25519 ${key}`, "example.com", 22, blob).status,
    "unknown",
  );
});

Deno.test("normalizeFingerprint() accepts ssh-keygen's forms", () => {
  const sha = "SHA256:" + "A".repeat(43);
  assertEquals(normalizeFingerprint(sha), sha);
  assertEquals(normalizeFingerprint(sha + "="), sha);
  const md5 = Array.from({ length: 16 }, () => "aB").join(":");
  assertEquals(normalizeFingerprint(md5), "MD5:" + md5.toLowerCase());
  assertEquals(normalizeFingerprint("MD5:" + md5), "MD5:" + md5.toLowerCase());
  assertEquals(normalizeFingerprint("SHA256:short"), undefined);
  assertEquals(normalizeFingerprint("nonsense"), undefined);
});

Deno.test("sftp settings are validated without connecting", () => {
  const def = getTransportDef("sftp")!;
  const base = { host: "h", username: "u", url: "https://x/" };
  assertEquals(checkOptions(def.options, base).problems, []);
  assertEquals(
    checkOptions(def.options, { host: "h", username: "u" }).problems.map((p) => p.name),
    ["url"],
  );
  const bad = def.validate!({ ...base, host_key_fingerprint: "SHA256:nope" });
  assertIncludes(bad.join("\n"), "host_key_fingerprint");
  const both = def.validate!({
    ...base,
    host_key_fingerprint: "SHA256:" + "A".repeat(43),
    insecure_skip_host_key_check: "true",
  });
  assertIncludes(both.join("\n"), "contradict");
  assert(def.options.filter((o) => o.secret).map((o) => o.name).join() === "password,passphrase");
});

Deno.test("sftp create() refuses bad values before connecting, naming the server and setting", async () => {
  const def = getTransportDef("sftp")!;
  const ctx = {
    serverName: "bad-sftp",
    log: logger("test"),
    maxConnections: 1,
    timeoutMs: 1000,
    sourceRoots: [],
    stateDir: Deno.makeTempDirSync(),
  };
  const base = { host: "h", username: "u", url: "https://x/" };
  for (
    const [values, expected] of [
      [{ ...base, port: "twenty-two" }, `"port" must be a whole number`],
      [{ ...base, insecure_skip_host_key_check: "maybe" }, "must be true or false"],
      [{ ...base, host_key_fingerprint: "SHA256:nope" }, "host_key_fingerprint"],
    ] as const
  ) {
    const err = await assertRejects(
      () => def.create(values, ctx),
      ClassifiedError,
    ) as ClassifiedError;
    assertEquals(err.kind, "fatal");
    assertIncludes(err.message, `server "bad-sftp"`);
    assertIncludes(err.message, expected);
  }
});
