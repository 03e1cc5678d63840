/**
 * SFTP sessions sharing SSH connections, against a private OpenSSH server
 * that allows only 2 sessions per connection (`MaxSessions 2`, as some
 * hosting does): sessions share a connection up to what the server allows,
 * a refused session opens on another connection, and no upload fails for it.
 * The private sshd reuses the shared test server's host key, user and
 * authorized keys; it is started here and ended by its pid.
 */
import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { logger, onLog } from "../../src/log.ts";
import { checkOptions } from "../../src/options.ts";
import { getTransportDef } from "../../src/transports/transport.ts";
import "../../src/transports/sftp.ts";
import { startServer } from "../_servers.ts";
import { assert, assertEquals } from "../_assert.ts";

const SCRIPTS = new URL("../../scripts/dev-servers/", import.meta.url).pathname;

async function freePort(): Promise<number> {
  const out = await new Deno.Command("bash", {
    args: ["-c", `source ${SCRIPTS}common.sh && fc_pick_ports 1`],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const port = Number(new TextDecoder().decode(out.stdout).trim());
  assert(out.success && port > 0, "no free port");
  return port;
}

async function bannerOn(port: number): Promise<boolean> {
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    const buf = new Uint8Array(64);
    const n = await c.read(buf);
    c.close();
    return n !== null && new TextDecoder().decode(buf.subarray(0, n)).startsWith("SSH-2.0");
  } catch {
    return false;
  }
}

Deno.test("sftp shares connections up to the server's MaxSessions and opens more when refused", async () => {
  const info = await startServer("sftp");
  const state = path.dirname(path.dirname(info.keyPath));
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), "fc-sftp-sessions-"));
  const dir = `fc-sessions-${crypto.randomUUID().slice(0, 8)}`;
  const log = path.join(tmp, "sshd.log");
  let sshd: Deno.ChildProcess | undefined;
  try {
    const port = await freePort();
    await fs.writeFile(
      path.join(tmp, "sshd_config"),
      [
        "ListenAddress 127.0.0.1",
        `Port ${port}`,
        `HostKey ${state}/keys/host_ed25519`,
        "PidFile none",
        "UsePAM no",
        "PasswordAuthentication no",
        "PubkeyAuthentication yes",
        "KbdInteractiveAuthentication no",
        `AllowUsers ${info.username}`,
        `AuthorizedKeysFile ${state}/authorized_keys/%u`,
        "StrictModes no",
        "UseDNS no",
        "MaxSessions 2",
        "MaxStartups 50",
        "LogLevel VERBOSE",
        "Subsystem sftp internal-sftp",
        "",
      ].join("\n"),
    );
    // exec: the child's pid is sshd's, so ending it ends the server.
    sshd = new Deno.Command("bash", {
      args: [
        "-c",
        `exec /usr/sbin/sshd -D -e -f "$1" 2>>"$2"`,
        "sshd",
        path.join(tmp, "sshd_config"),
        log,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    for (let i = 0; i < 100 && !(await bannerOn(port)); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert(await bannerOn(port), "the private sshd did not start");

    const def = getTransportDef("sftp")!;
    const { values, problems } = checkOptions(def.options, {
      host: "127.0.0.1",
      port: String(port),
      username: info.username,
      key: info.keyPath,
      host_key_fingerprint: info.hostKeyFingerprint,
      path: dir,
      url: "https://cdn.example.com/",
    });
    assertEquals(problems, []);
    const t = await def.create(values, {
      serverName: "sessions",
      log: logger("sftp:sessions"),
      maxConnections: 5,
      timeoutMs: 20_000,
      sourceRoots: [],
      stateDir: tmp,
    });
    const warnings: string[] = [];
    const unsubscribe = onLog((r) => {
      if (r.component === "sftp:sessions" && r.level !== "debug" && r.level !== "info") {
        warnings.push(r.message);
      }
    });
    const signal = new AbortController().signal;
    // Large enough (streamed, several round trips) that the five uploads overlap.
    const size = 3 * 1024 * 1024;
    const files = await Promise.all(
      Array.from({ length: 5 }, async (_, i) => {
        const p = path.join(tmp, `f${i}`);
        const data = new Uint8Array(size).fill(65 + i);
        await fs.writeFile(p, data);
        return p;
      }),
    );
    try {
      // Twice: the second round reuses what the first opened.
      for (let round = 0; round < 2; round++) {
        const results = await Promise.all(
          files.map((p, i) => t.put(p, `r${round}/f${i}`, { signal, size, unprocessed: false })),
        );
        assertEquals(results.map((r) => r.size), files.map(() => size));
      }
    } finally {
      await t.close();
      unsubscribe();
    }
    // A refusal on a shared connection is not the server's limit on connections.
    assertEquals(warnings, []);
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 5; i++) {
        const st = await fs.stat(path.join(info.root, dir, `r${round}`, `f${i}`));
        assertEquals(st.size, size);
      }
    }
    // Give sshd a moment to write its last lines.
    await new Promise((r) => setTimeout(r, 300));
    const text = await fs.readFile(log, "utf8");
    const lines = text.split("\n");
    const logins = lines.filter((l) => l.includes("Accepted publickey")).length;
    const sessions = lines.filter((l) => l.includes("Starting session: subsystem 'sftp'")).length;
    const refused = lines.filter((l) => l.includes("no more sessions")).length;
    // The server refused sessions beyond its limit, the uploads went on regardless, every
    // connection carried what the server allowed (2), and the connections were shared.
    assert(refused > 0, "the server refused no session: the test did not test the limit");
    assert(sessions >= 3, `expected at least 3 sessions, sshd logged ${sessions}`);
    assert(logins < sessions, `${logins} logins for ${sessions} sessions: nothing was shared`);
    assert(logins >= Math.ceil(sessions / 2), `${logins} logins for ${sessions} sessions`);
  } finally {
    if (sshd) {
      try {
        sshd.kill("SIGTERM");
      } catch {
        // Gone already.
      }
      await sshd.status;
    }
    await fs.rm(path.join(info.root, dir), { recursive: true, force: true });
    await fs.rm(tmp, { recursive: true, force: true });
  }
});
