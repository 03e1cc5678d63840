import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import "../../src/transports/symlink_or_copy.ts";
import { getTransportDef } from "../../src/transports/transport.ts";
import { logger } from "../../src/log.ts";
import { conformance } from "./_conformance.ts";
import { assert, assertEquals } from "../_assert.ts";

async function makeTransport(root: string, sourceRoots: string[] = []) {
  const def = getTransportDef("symlink_or_copy")!;
  return await def.create({ location: root, url: "http://cdn.test/static/", copy: "false" }, {
    serverName: "local",
    log: logger("test"),
    maxConnections: 4,
    timeoutMs: 10_000,
    sourceRoots,
    stateDir: root + ".state",
  });
}

Deno.test("symlink_or_copy passes the transport conformance suite", async (t) => {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), "fc-local-"));
  try {
    await conformance(t, {
      transport: () => makeTransport(root),
      readBack: async (p) => {
        try {
          return new Uint8Array(await fs.readFile(path.join(root, p)));
        } catch {
          return null;
        }
      },
      urlPrefix: "http://cdn.test/static/",
    });
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
});

Deno.test("symlink_or_copy links unprocessed files inside a source and copies others", async () => {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), "fc-local-"));
  const src = await fs.mkdtemp(path.join(os.tmpdir(), "fc-src-"));
  try {
    const t = await makeTransport(root, [src]);
    const signal = new AbortController().signal;
    await fs.writeFile(path.join(src, "a.css"), "a{}");
    await t.put(path.join(src, "a.css"), "s/a.css", { signal, size: 3, unprocessed: true });
    const link = await fs.lstat(path.join(root, "s/a.css"));
    assert(link.isSymbolicLink());
    assertEquals(await fs.readlink(path.join(root, "s/a.css")), path.join(src, "a.css"));
    // A processed file (or one outside every source) is copied.
    await t.put(path.join(src, "a.css"), "s/b.css", { signal, size: 3, unprocessed: false });
    assert((await fs.lstat(path.join(root, "s/b.css"))).isFile());
    const outside = path.join(root + ".x");
    await fs.writeFile(outside, "x");
    await t.put(outside, "s/c.css", { signal, size: 1, unprocessed: true });
    assert((await fs.lstat(path.join(root, "s/c.css"))).isFile());
    await fs.rm(outside);
  } finally {
    await fs.rm(root, { recursive: true, force: true });
    await fs.rm(src, { recursive: true, force: true });
  }
});
