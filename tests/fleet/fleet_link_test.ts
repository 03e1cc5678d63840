/**
 * The link of a fleet node to a real PostgreSQL store: which failures mean
 * the store is down (the job waits in the local queue) and which are one
 * call's own error (the job fails with it, visibly).
 */
import * as net from "node:net";
import { logger } from "../../src/log.ts";
import { FleetLink, FleetUnavailable } from "../../src/pipeline/fleet_link.ts";
import { askAgain } from "../../src/pipeline/fleet_lease.ts";
import { redactStoreUrl } from "../../src/store/shared/open.ts";
import { assert, assertEquals, assertRejects } from "../_assert.ts";
import { freshDatabase } from "../_servers.ts";

const log = logger("test");

function link(url: string): FleetLink {
  return new FleetLink({ url, redacted: redactStoreUrl(url), node: "n1", log, back: () => {} });
}

Deno.test("FleetLink: an error the store answers a call with fails that call only; the store is not taken for down", async () => {
  const db = await freshDatabase("postgres");
  const l = link(db.url);
  try {
    const key = { input_file: "/srv/site/a.txt", server: "cdn", dest: "" };
    // PostgreSQL's text refuses a NUL byte: the store answers, with an error of this call.
    const e = await assertRejects(() =>
      l.call((s) => s.claim(key, "20:1:abc\0x", Date.now(), 60_000))
    );
    assert(!(e instanceof FleetUnavailable), `taken for an outage: ${e}`);
    assert(/0x00|invalid byte/i.test(String(e)), String(e));
    assertEquals(l.reachable, true);
    assertEquals(l.downSince, null);
    // The next call goes through at once (no backoff), also the fingerprint of a second upload.
    const c = await l.call((s) => s.claim(key, askAgain("20:1:abc"), Date.now(), 60_000));
    assertEquals(c.kind, "mine");
  } finally {
    await l.close();
    await db.drop().catch(() => {});
  }
});

Deno.test("FleetLink: a store out of reach is down: its calls fail with FleetUnavailable", async () => {
  // A port nobody listens on.
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  const l = link(`postgres://fc:secret@127.0.0.1:${port}/fc`);
  try {
    await assertRejects(() => l.call((s) => s.nodes()), FleetUnavailable);
    assertEquals(l.reachable, false);
    assert(l.lastError !== null && !l.lastError.includes("secret"), String(l.lastError));
  } finally {
    await l.close();
  }
});
