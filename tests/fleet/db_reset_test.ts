/**
 * A shared store whose connections are reset in the middle of requests (a
 * server killed, a network cut, a firewall): the node's calls fail and are
 * retried, the process never ends, and everything converges once the store
 * answers.
 */
import * as net from "node:net";
import * as path from "node:path";
import { diffTrees, eventually, sleep, tree, write } from "../_harness.ts";
import { assert } from "../_assert.ts";
import { freshDatabase } from "../_servers.ts";
import { fleetNode, fleetWorld, startNode, stopAll } from "./_fleet.ts";

/**
 * A loopback proxy that can end every client connection with a TCP reset
 * (`ECONNRESET` on the client) the moment a client sends its next request,
 * so that a request is always on its way when it happens — not the orderly
 * close of `TcpProxy.cut()` (Deno's own sockets cannot send a reset; Node's
 * `resetAndDestroy` can).
 */
async function resettingProxy(target: number) {
  const clients = new Set<net.Socket>();
  let armed: (() => void) | undefined;
  const resetAll = () => {
    for (const c of clients) c.resetAndDestroy();
    clients.clear();
  };
  const server = net.createServer((client) => {
    clients.add(client);
    const upstream = net.connect(target, "127.0.0.1");
    client.pipe(upstream).pipe(client);
    client.on("data", () => {
      const fired = armed;
      if (!fired) return;
      armed = undefined;
      resetAll();
      fired();
    });
    const drop = () => {
      clients.delete(client);
      upstream.destroy();
      client.destroy();
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    /** Resolves once the next request from any client was met with resets. */
    resetAtNextRequest: () => new Promise<void>((r) => (armed = r)),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

for (const kind of ["postgres", "mariadb"] as const) {
  Deno.test(`fleet (${kind}): connections reset in the middle of requests end no node; it converges`, async () => {
    const db = await freshDatabase(kind);
    const url = new URL(db.url);
    const proxy = await resettingProxy(Number(url.port));
    url.port = String(proxy.port);
    const w = fleetWorld(() => url.href);
    const shared = path.join(w.root, "shared");
    const n = fleetNode(w, "r1", shared);
    try {
      const d = startNode(n);
      await d.waitFor("Initial scan done", 30_000);
      for (let i = 0; i < 20; i++) write(path.join(shared, "a", `f${i}.txt`), `before ${i}`);
      await eventually(() => diffTrees(tree(shared), tree(w.dst)), 30_000, "the first files");
      // Five times: the node's next request (a claim, a publish, a follow, a heartbeat) is met by
      // resets of every connection, while files change.
      for (let round = 0; round < 5; round++) {
        const reset = proxy.resetAtNextRequest();
        write(path.join(shared, "b", `g${round}.txt`), `during ${round}`);
        let timer: number | undefined;
        const outcome = await Promise.race([
          reset.then(() => "reset"),
          d.child.status.then(() => "ended"),
          new Promise<undefined>((r) => {
            timer = setTimeout(() => r(undefined), 15_000) as unknown as number;
          }),
        ]).finally(() => clearTimeout(timer));
        assert(
          outcome === "reset",
          `the node ${outcome ?? "sent no request"}:\n${d.log().slice(-3000)}`,
        );
        write(path.join(shared, "c", `h${round}.txt`), `after ${round}`);
      }
      await eventually(() => diffTrees(tree(shared), tree(w.dst)), 60_000, "after the resets");
      // A reset reached a request on its way (the first failed call's line; lines are written
      // in batches, so it may come a moment later).
      await d.waitFor(/unreachable since .*ECONNRESET/, 10_000);
      const exited = await Promise.race([
        d.child.status.then(() => true),
        sleep(500).then(() => false),
      ]);
      const log = d.log();
      assert(!exited && !/Uncaught/.test(log), "the node ended:\n" + log.slice(-3000));
    } finally {
      await stopAll([n]);
      await proxy.close();
      await db.drop().catch(() => {});
      w.cleanup();
    }
  });
}
