/**
 * The retired janitor against an upload to the same path: the delete of a
 * retired version is held at a gate while an upload announces and writes
 * that path (a file back to an earlier content gets its earlier unique
 * name again), so the interleaving is forced, with a real store and a real
 * local destination.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { configureLog, logger } from "../../src/log.ts";
import { RetiredJanitor } from "../../src/pipeline/retired_janitor.ts";
import { allRetired, retire } from "../../src/store/retired.ts";
import { Store } from "../../src/store/store.ts";
import "../../src/transports/symlink_or_copy.ts";
import { getTransportDef, type Transport } from "../../src/transports/transport.ts";
import { assertEquals } from "../_assert.ts";

configureLog({ stderr: false, sink: () => {} });

interface Rig {
  root: string;
  dst: string;
  store: Store;
  /** Transport whose deletes wait for `release` once `held` resolved. */
  transport: Transport;
  held: Promise<void>;
  release(): void;
  rewrites: { server: string; input_file: string; dest: string }[];
  janitor: RetiredJanitor;
  close(): void;
}

async function rig(): Promise<Rig> {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "fc-janitor-")));
  const dst = path.join(root, "dst");
  fs.mkdirSync(dst);
  const store = new Store(path.join(root, "data"));
  const local = await getTransportDef("symlink_or_copy")!.create(
    { location: dst, url: "http://cdn.test/", copy: "true" },
    {
      serverName: "cdn",
      log: logger("test"),
      maxConnections: 4,
      timeoutMs: 10_000,
      sourceRoots: [],
      stateDir: root + "/state",
    },
  );
  const held = Promise.withResolvers<void>();
  const released = Promise.withResolvers<void>();
  const transport: Transport = {
    url: (p) => local.url(p),
    close: () => local.close(),
    put: (l, r, o) => local.put(l, r, o),
    async delete(remotePath, o) {
      held.resolve();
      await released.promise;
      await local.delete(remotePath, o);
    },
  };
  const rewrites: Rig["rewrites"] = [];
  const abort = new AbortController();
  const janitor = new RetiredJanitor({
    store,
    transport: () => Promise.resolve(transport),
    log: logger("janitor"),
    signal: abort.signal,
    rewrite: (server, f) => rewrites.push({ server, ...f }),
  });
  return {
    root,
    dst,
    store,
    transport,
    held: held.promise,
    release: released.resolve,
    rewrites,
    janitor,
    close() {
      abort.abort();
      store.close();
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}

const FILE = "/site/css/style.css";
const REMOTE = "css/style_abc.css";

/** The old version of FILE at REMOTE on the destination, retired and due now. */
function retiredVersion(r: Rig): void {
  fs.mkdirSync(path.join(r.dst, "css"));
  fs.writeFileSync(path.join(r.dst, REMOTE), "old version");
  r.store.tx(() => retire(r.store, "cdn", [REMOTE], 0, FILE));
}

Deno.test("retired janitor: an upload to the path that started while its delete ran is queued again", async () => {
  const r = await rig();
  try {
    retiredVersion(r);
    const pass = r.janitor.run(Date.now());
    await r.held;
    // The delete was judged safe and is on its way; now the file's content is back to this
    // version: its upload announces the path and writes it.
    r.store.claimIntent("cdn", REMOTE, Date.now(), FILE, "");
    fs.writeFileSync(path.join(r.dst, REMOTE), "the same version again");
    r.release();
    await pass;
    // The delete took the fresh copy with it: the janitor says so, the file is written again.
    assertEquals(fs.existsSync(path.join(r.dst, REMOTE)), false);
    assertEquals(r.rewrites, [{ server: "cdn", input_file: FILE, dest: "" }]);
    assertEquals(allRetired(r.store), []);
  } finally {
    r.close();
  }
});

Deno.test("retired janitor: a delete nobody raced queues nothing", async () => {
  const r = await rig();
  try {
    retiredVersion(r);
    r.release();
    await r.janitor.run(Date.now());
    assertEquals(fs.existsSync(path.join(r.dst, REMOTE)), false);
    assertEquals(r.rewrites, []);
    assertEquals(allRetired(r.store), []);
  } finally {
    r.close();
  }
});

Deno.test("retired janitor: a retired path an upload announced waits, and is deleted when the upload wrote elsewhere", async () => {
  const r = await rig();
  try {
    retiredVersion(r);
    r.release();
    // An upload picked for the path: the retired version stays while it runs.
    r.store.claimIntent("cdn", REMOTE, Date.now(), FILE, "");
    await r.janitor.run(Date.now());
    assertEquals(fs.readFileSync(path.join(r.dst, REMOTE), "utf8"), "old version");
    assertEquals(allRetired(r.store).length, 1);
    // The job ended without writing there (its file vanished): the old version goes after all.
    r.store.dropIntent("cdn", REMOTE);
    await r.janitor.run(Date.now());
    assertEquals(fs.existsSync(path.join(r.dst, REMOTE)), false);
    assertEquals(r.rewrites, []);
  } finally {
    r.close();
  }
});
