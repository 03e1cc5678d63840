/**
 * `verify --repair` while the daemon works on the same files: every
 * interleaving of a repair with an upload in flight is forced with a
 * transport whose calls can be held at a gate, so each race is reproduced
 * deterministically (a real daemon, a real local destination, no mocks).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { loadConfig } from "../../src/config/load.ts";
import type { Config } from "../../src/config/types.ts";
import { configureLog } from "../../src/log.ts";
import { Daemon } from "../../src/pipeline/daemon.ts";
import { Store } from "../../src/store/store.ts";
import { MODIFIED } from "../../src/store/events.ts";
import "../../src/transports/mod.ts";
import {
  getTransportDef,
  type Lister,
  type Mover,
  registerTransport,
  type Stater,
  type Transport,
} from "../../src/transports/transport.ts";
import { verify } from "../../src/verify/verify.ts";
import { assert, assertEquals } from "../_assert.ts";
import { eventually, localConfig, type Workspace, workspace, write } from "../_harness.ts";

/** A held call: `reached` resolves when a call arrives, `release()` lets it go on. */
interface Gate {
  reached: Promise<void>;
  release(): void;
}

/** Gates armed per operation and remote path; each holds one call. */
const gates = new Map<string, { reached: () => void; released: Promise<void> }>();

function arm(op: "put" | "delete" | "move", remotePath: string): Gate {
  const reached = Promise.withResolvers<void>();
  const released = Promise.withResolvers<void>();
  gates.set(`${op} ${remotePath}`, { reached: reached.resolve, released: released.promise });
  return { reached: reached.promise, release: released.resolve };
}

async function pass(op: string, remotePath: string): Promise<void> {
  const g = gates.get(`${op} ${remotePath}`);
  if (!g) return;
  gates.delete(`${op} ${remotePath}`);
  g.reached();
  await g.released;
}

// `gated`: the local folder transport, with puts and moves held after they landed and deletes
// held before they start.
const local = getTransportDef("symlink_or_copy")!;
registerTransport({
  ...local,
  name: "gated",
  aliases: [],
  async create(settings, ctx) {
    type Local = Transport & Stater & Lister & Mover;
    const t = await local.create(settings, ctx) as Local;
    const gated: Local = {
      url: (p) => t.url(p),
      close: () => t.close(),
      stat: (p, o) => t.stat(p, o),
      list: (p, o) => t.list(p, o),
      async move(from, to, o) {
        await t.move(from, to, o);
        await pass("move", to);
      },
      async put(localPath, remotePath, o) {
        const r = await t.put(localPath, remotePath, o);
        await pass("put", remotePath);
        return r;
      },
      async delete(remotePath, o) {
        await pass("delete", remotePath);
        await t.delete(remotePath, o);
      },
    };
    return gated;
  },
});

configureLog({ stderr: false, sink: () => {} });

function gatedConfig(ws: Workspace): Config {
  localConfig(ws, { settings: { rescanInterval: "0", deleteDelay: "50" } });
  fs.writeFileSync(
    ws.config,
    fs.readFileSync(ws.config, "utf8").replace(
      'transporter="symlink_or_copy"',
      'transporter="gated"',
    ),
  );
  return loadConfig(ws.config);
}

/** Starts a watching daemon and waits until its initial work is done. */
async function watching(config: Config): Promise<{ d: Daemon; run: Promise<unknown> }> {
  const d = await Daemon.open(config);
  const scanned = Promise.withResolvers<void>();
  d.on((e) => {
    if (e.type === "initial-scan-done") scanned.resolve();
  });
  const run = d.run();
  await scanned.promise;
  await d.waitIdle();
  return { d, run };
}

/** One `sync --once` pass in this process. */
async function once(config: Config): Promise<void> {
  const s = await (await Daemon.open(config, { once: true })).run();
  assertEquals(s.failed, 0);
}

/** Waits (the daemon also picks up other processes' queue changes once a second) for the files. */
async function converged(ws: Workspace, rels: string[]): Promise<string[]> {
  const missing = () => rels.filter((r) => !fs.existsSync(path.join(ws.dst, r)));
  await eventually(() => missing().join(", "), 10_000, "the destination").catch(() => {});
  return missing();
}

/**
 * A workspace on the gated destination with `files` (relative path → content) in its source;
 * unless `watch` is false, a watching daemon that has done its initial work runs while `fn`
 * does and is stopped after it. The workspace is removed in the end.
 */
async function race(
  files: Record<string, string>,
  fn: (ws: Workspace, config: Config) => Promise<void>,
  options: { watch?: boolean } = {},
): Promise<void> {
  const ws = workspace("fc-verify-race-");
  try {
    const config = gatedConfig(ws);
    for (const [rel, content] of Object.entries(files)) write(path.join(ws.src, rel), content);
    if (options.watch === false) return await fn(ws, config);
    const { d, run } = await watching(config);
    try {
      await fn(ws, config);
    } finally {
      d.stop();
      await run;
    }
  } finally {
    ws.cleanup();
  }
}

Deno.test("verify --repair re-uploads a file whose upload landed before its folder was removed and was recorded after", async () => {
  await race({ "d/x.txt": "x" }, async (ws, config) => {
    assert(fs.existsSync(path.join(ws.dst, "d/x.txt")));
    // y.txt lands at the destination; its job is still running, not recorded yet.
    const gate = arm("put", "d/y.txt");
    write(path.join(ws.src, "d/y.txt"), "y");
    await gate.reached;
    assert(fs.existsSync(path.join(ws.dst, "d/y.txt")));
    fs.rmSync(path.join(ws.dst, "d"), { recursive: true });
    await verify(config, { repair: true });
    gate.release();
    assertEquals(await converged(ws, ["d/x.txt", "d/y.txt"]), []);
  });
});

Deno.test("verify --repair re-uploads a deleted orphan that an upload announced while it was being deleted", async () => {
  await race({ "d/x.txt": "x" }, async (ws, config) => {
    // A file no record accounts for: an orphan, until the source gets one of that name.
    write(path.join(ws.dst, "d/z.txt"), "left behind");
    const del = arm("delete", "d/z.txt");
    const repaired = verify(config, { repair: true });
    await del.reached;
    // The upload of the new source file lands and waits to be recorded.
    const put = arm("put", "d/z.txt");
    write(path.join(ws.src, "d/z.txt"), "z");
    await put.reached;
    del.release();
    await repaired;
    put.release();
    assertEquals(await converged(ws, ["d/x.txt", "d/z.txt"]), []);
    assertEquals(fs.readFileSync(path.join(ws.dst, "d/z.txt"), "utf8"), "z");
  });
});

Deno.test("verify --repair uploads a file removed from the destination even when a job that would skip it is queued", async () => {
  await race({ "d/x.txt": "x" }, async (ws, config) => {
    await once(config);
    // Queued work for an unchanged file (a watcher saw an attribute change): it finds nothing to do.
    const store = new Store(ws.data);
    store.tx(() =>
      store.enqueue([{
        input_file: path.join(ws.src, "d/x.txt"),
        source: "site",
        server: "local",
        dest: "",
        event: MODIFIED,
      }], Date.now())
    );
    store.close();
    fs.rmSync(path.join(ws.dst, "d"), { recursive: true });
    await verify(config, { repair: true });
    await once(config);
    assertEquals(fs.existsSync(path.join(ws.dst, "d/x.txt")), true);
  }, { watch: false });
});

Deno.test("verify --repair does not take a file moved server-side, not recorded yet, for an orphan", async () => {
  await race({ "d/old.txt": "moved, not uploaded again" }, async (ws, config) => {
    const gate = arm("move", "d/new.txt");
    fs.renameSync(path.join(ws.src, "d/old.txt"), path.join(ws.src, "d/new.txt"));
    await gate.reached;
    assert(fs.existsSync(path.join(ws.dst, "d/new.txt")));
    const r = await verify(config, { repair: true });
    assertEquals(r.repaired.deleted, 0, JSON.stringify(r.servers[0]?.problems));
    gate.release();
    assertEquals(await converged(ws, ["d/new.txt"]), []);
    assertEquals(fs.existsSync(path.join(ws.dst, "d/old.txt")), false);
  });
});
