/**
 * The shared store's conformance suite (shared_suite.ts) against SQLite,
 * PostgreSQL and MariaDB, each a real database; plus the parts only one
 * backend has (several processes on one SQLite file).
 *
 * @module
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { openSharedStore, redactStoreUrl } from "../../src/store/shared/open.ts";
import { ClassifiedError } from "../../src/errors.ts";
import { assert, assertEquals, assertIncludes, assertRejects } from "../_assert.ts";
import { type DatabaseServer, freshDatabase, startDatabase, stopDatabase } from "../_servers.ts";
import { runSharedStoreSuite } from "./shared_suite.ts";

const CLAIMER = path.join(import.meta.dirname!, "shared_claimer.ts");

Deno.test("shared store conformance: SQLite", async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fc-shared-"));
  const url = `sqlite:${path.join(dir, "shared.db")}`;
  try {
    await runSharedStoreSuite((name, fn) => t.step(name, fn), {
      open: (node) => openSharedStore(url, node),
    });

    await t.step("two processes claiming at once: exactly one gets each key", async () => {
      const file = `sqlite:${path.join(dir, "procs.db")}`;
      const run = (node: string) =>
        new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", CLAIMER, file, node, "300"],
          stdout: "piped",
          stderr: "inherit",
        }).output();
      const outs = await Promise.all([run("p1"), run("p2"), run("p3")]);
      const got = outs.map((o) => {
        assertEquals(o.code, 0);
        return JSON.parse(new TextDecoder().decode(o.stdout)) as number[];
      });
      const all = got.flat().sort((x, y) => x - y);
      assertEquals(all, Array.from({ length: 300 }, (_, i) => i));
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** A private server instance: the suite restarts it, which must not disturb other tests. */
const INSTANCE = "conformance";

/** A loopback port nothing listens on. */
function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

function serverSuite(server: DatabaseServer, scheme: string, title: string) {
  Deno.test({
    name: `shared store conformance: ${title}`,
    // The drivers keep sockets and timers of their pools until close(); each store is closed.
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async (t) => {
      const db = await freshDatabase(server, INSTANCE);
      const secret = `pw-${crypto.randomUUID()}`;
      try {
        await runSharedStoreSuite((name, fn) => t.step(name, fn), {
          open: (node) => openSharedStore(db.url, node),
          unreachableUrl: `${scheme}://fc:${secret}@127.0.0.1:${closedPort()}/fileconveyor`,
          unreachablePassword: secret,
          stop: () => stopDatabase(server, INSTANCE),
          start: async () => {
            await startDatabase(server, INSTANCE);
          },
        });

        await t.step("TLS: verified against the server's CA; refused without it", async () => {
          const ca = encodeURIComponent(db.info.caPath);
          const ok = await openSharedStore(
            `${db.url}?sslmode=verify-full&sslrootcert=${ca}`,
            "tls",
          );
          try {
            await ok.migrate();
            assertEquals(await ok.get({ input_file: "/none", server: "s", dest: "" }), undefined);
          } finally {
            await ok.close();
          }
          // The test certificate is self-signed: with the system's CAs it must fail.
          const bad = await openSharedStore(`${db.url}?sslmode=require`, "tls");
          try {
            const e = await assertRejects(() => bad.migrate(), ClassifiedError, "certificate");
            assertEquals((e as ClassifiedError).kind, "auth");
          } finally {
            await bad.close();
          }
        });

        await t.step("a wrong password is an auth error that does not show it", async () => {
          const wrong = `wrong-${crypto.randomUUID()}`;
          const s = await openSharedStore(db.url, "pw", { password: wrong });
          try {
            const e = await assertRejects(() => s.migrate(), ClassifiedError);
            assertEquals((e as ClassifiedError).kind, "auth");
            assert(!e.message.includes(wrong) && !e.message.includes(db.info.password), e.message);
            // The store is named as everywhere else: its URL without the password.
            assertIncludes(e.message, `"${redactStoreUrl(db.url)}"`);
          } finally {
            await s.close();
          }
        });
      } finally {
        await db.drop();
        // The private instance is this test's: it does not outlive it.
        await stopDatabase(server, INSTANCE);
      }
    },
  });
}

serverSuite("postgres", "postgres", "PostgreSQL");
serverSuite("mariadb", "mysql", "MariaDB");
