import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import "../../src/transports/symlink_or_copy.ts";
import { getTransportDef } from "../../src/transports/transport.ts";
import { logger } from "../../src/log.ts";
import { conformance } from "./_conformance.ts";
import { assert, assertEquals } from "../_assert.ts";
import { type ClassifiedError, SourceChanged } from "../../src/errors.ts";
import { isTempName } from "../../src/transports/paths.ts";

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
      transporter: "symlink_or_copy",
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

Deno.test("symlink_or_copy's copies report a changed source and refusals by their kind, and leave no temp file", async () => {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), "fc-local-"));
  const src = await fs.mkdtemp(path.join(os.tmpdir(), "fc-src-"));
  const t = await makeTransport(root);
  try {
    const signal = new AbortController().signal;
    const file = path.join(src, "a.css");
    await fs.writeFile(file, "a{}");
    const put = (from: string, to: string, size = 3) =>
      t.put(from, to, { signal, size, unprocessed: false });
    const failure = (p: Promise<unknown>) =>
      p.then(() => undefined, (e: unknown) => e as ClassifiedError);

    assertEquals((await put(file, "s/a.css")).md5, "307cc22fa7769c09386c1c90fe36bbc6");

    // Another size than the one stat'ed: SourceChanged, the old copy stays.
    await fs.writeFile(file, "b{x}");
    const changed = await failure(put(file, "s/a.css"));
    assert(SourceChanged.in(changed), String(changed));
    assertEquals(await fs.readFile(path.join(root, "s/a.css"), "utf8"), "a{}");

    // A missing source: retried; a directory swapped in: retried, named.
    const missing = await failure(put(path.join(src, "gone.css"), "s/gone.css"));
    assertEquals(missing?.kind, "retry");
    assert(/ENOENT/.test(String(missing?.message)), String(missing));
    await fs.mkdir(path.join(src, "dir.css"));
    const dir = await failure(put(path.join(src, "dir.css"), "s/dir.css"));
    assertEquals(dir?.kind, "retry");
    assert(/a directory/.test(String(dir?.message)), String(dir));

    // A directory with files where the copy goes: the rename's error, fatal.
    await fs.mkdir(path.join(root, "s/full.css/x"), { recursive: true });
    const taken = await failure(put(path.join(src, "a.css"), "s/full.css", 4));
    assertEquals(taken?.kind, "fatal", String(taken));

    const left = (await fs.readdir(path.join(root, "s"))).filter((n) => isTempName(n));
    assertEquals(left, []);
  } finally {
    await t.close();
    await fs.rm(root, { recursive: true, force: true });
    await fs.rm(src, { recursive: true, force: true });
  }
});
