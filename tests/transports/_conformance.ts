/**
 * One conformance suite for every transport (rclone's habit). Each transport
 * test file calls {@linkcode conformance} with a real server and an
 * independent way to read back what arrived.
 *
 * @module
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { ClassifiedError } from "../../src/errors.ts";
// Every transport definition, for their `storedMd5` promises.
import "../../src/transports/mod.ts";
import {
  getTransportDef,
  isLister,
  isMover,
  isStater,
  type Transport,
} from "../../src/transports/transport.ts";
import { assert, assertEquals, assertRejects } from "../_assert.ts";

/** What a transport test provides. */
export interface ConformanceTarget {
  /** Creates a fresh transport whose root is empty (or a unique prefix). */
  transport(): Promise<Transport>;
  /** Reads a remote file by an independent route; null when missing. */
  readBack(remotePath: string): Promise<Uint8Array | null>;
  /**
   * The `transporter` name: when its definition promises `storedMd5`, the
   * stat step also checks that `stat` with `md5` reports what was stored.
   */
  transporter?: string;
  /** The URL prefix the transport should produce for remote paths, if predictable. */
  urlPrefix?: string;
  /** Size of the large-file case (default 6 MiB: above S3's 5 MiB multipart part). */
  largeSize?: number;
  /**
   * Reads the stored Content-Type and Content-Encoding by an independent route
   * (object stores that keep them); enables the content-type step.
   */
  readHeaders?(
    remotePath: string,
  ): Promise<{ contentType: string | null; contentEncoding: string | null }>;
}

function md5(data: Uint8Array): string {
  return createHash("md5").update(data).digest("hex");
}

function bytes(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

async function writeTemp(dir: string, name: string, data: Uint8Array): Promise<string> {
  const p = path.join(dir, name);
  await fs.writeFile(p, data);
  return p;
}

/** Makes a named pipe (a real one: `mkfifo`). */
export async function mkfifo(p: string): Promise<void> {
  const r = await new Deno.Command("mkfifo", { args: [p] }).output();
  if (!r.success) throw new Error(`mkfifo ${p} failed: ${new TextDecoder().decode(r.stderr)}`);
}

/** Registers the conformance steps on a test context. */
export async function conformance(t: Deno.TestContext, target: ConformanceTarget): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "fc-conf-"));
  const transport = await target.transport();
  const signal = new AbortController().signal;
  const put = async (remote: string, data: Uint8Array) => {
    const local = await writeTemp(dir, crypto.randomUUID(), data);
    return await transport.put(local, remote, { signal, size: data.length, unprocessed: false });
  };
  try {
    await t.step("put stores the bytes and reports the size", async () => {
      const r = await put("a.txt", bytes("hello"));
      assertEquals(r.size, 5);
      // A transport that reports an MD5 must report the right one.
      if (r.md5 !== undefined) assertEquals(r.md5, md5(bytes("hello")));
      assertEquals(await target.readBack("a.txt"), bytes("hello"));
    });
    await t.step("put overwrites an existing file", async () => {
      await put("a.txt", bytes("second version"));
      assertEquals(await target.readBack("a.txt"), bytes("second version"));
    });
    await t.step("put is idempotent", async () => {
      await put("a.txt", bytes("second version"));
      await put("a.txt", bytes("second version"));
      assertEquals(await target.readBack("a.txt"), bytes("second version"));
    });
    await t.step("a failed put keeps the old content", async () => {
      // Contract: atomic. A missing local file and an aborted signal both reject
      // with a ClassifiedError and leave what was stored before untouched.
      const missing = path.join(dir, "does-not-exist");
      await assertRejects(
        () => transport.put(missing, "a.txt", { signal, size: 3, unprocessed: false }),
        ClassifiedError,
      );
      const local = await writeTemp(dir, crypto.randomUUID(), bytes("new"));
      await assertRejects(() =>
        transport.put(local, "a.txt", { signal: AbortSignal.abort(), size: 3, unprocessed: false })
      );
      assertEquals(await target.readBack("a.txt"), bytes("second version"));
    });
    await t.step("put creates nested directories", async () => {
      await put("x/y/z/deep.css", bytes("body{}"));
      assertEquals(await target.readBack("x/y/z/deep.css"), bytes("body{}"));
    });
    await t.step("put handles odd names", async () => {
      for (
        const name of ["with space.txt", "ünïcødé-日本.txt", "h#sh?q%p+&;.txt", "-leading.txt"]
      ) {
        await put(`odd/${name}`, bytes(name));
        assertEquals(await target.readBack(`odd/${name}`), bytes(name), name);
      }
    });
    if (target.readHeaders) {
      const readHeaders = target.readHeaders;
      await t.step(
        "put sets Content-Type from the name and keeps a given type and encoding",
        async () => {
          await put("ct/style.css", bytes("a{}"));
          const css = await readHeaders("ct/style.css");
          assert(css.contentType?.startsWith("text/css"), `Content-Type ${css.contentType}`);
          assertEquals(css.contentEncoding, null);
          await put("ct/unknown.zz-unknown", bytes("?"));
          assertEquals(
            (await readHeaders("ct/unknown.zz-unknown")).contentType,
            "application/octet-stream",
          );
          // A precompressed variant: the original's type, and how it is encoded.
          const data = new Uint8Array([
            0x1f,
            0x8b,
            8,
            0,
            0,
            0,
            0,
            0,
            0,
            3,
            3,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
          ]);
          const local = await writeTemp(dir, crypto.randomUUID(), data);
          await transport.put(local, "ct/style.css.gz", {
            signal,
            size: data.length,
            unprocessed: false,
            contentType: "text/css",
            contentEncoding: "gzip",
          });
          assertEquals(await readHeaders("ct/style.css.gz"), {
            contentType: "text/css",
            contentEncoding: "gzip",
          });
        },
      );
    }
    await t.step("url percent-encodes every segment", () => {
      const u = transport.url("odd/h#sh?q%p+&;.txt");
      assert(u.endsWith("odd/h%23sh%3Fq%25p%2B%26%3B.txt"), u);
      if (target.urlPrefix) assert(u.startsWith(target.urlPrefix), u);
    });
    await t.step("delete removes the file; deleting a missing file succeeds", async () => {
      await transport.delete("x/y/z/deep.css", { signal });
      assertEquals(await target.readBack("x/y/z/deep.css"), null);
      await transport.delete("x/y/z/deep.css", { signal });
      await transport.delete("never/existed.txt", { signal });
    });
    await t.step("deleting a path below a file succeeds and keeps the file", async () => {
      // A directory `d/` replaced by a file `d` at the destination: what was below is gone.
      await put("typed/d", bytes("a file now"));
      await transport.delete("typed/d/below.txt", { signal });
      assertEquals(await target.readBack("typed/d"), bytes("a file now"));
    });
    await t.step("a FIFO swapped in for the local file is refused without blocking", async () => {
      // The pipeline checked the type before, but a named pipe may take the file's place
      // after that: opening it must neither block nor read it.
      for (const size of [5, 8 * 1024 * 1024]) {
        const local = await writeTemp(dir, crypto.randomUUID(), bytes("hello"));
        await fs.rm(local);
        await mkfifo(local);
        const put = transport.put(local, `fifo/${size}.txt`, { signal, size, unprocessed: false });
        let timer: ReturnType<typeof setTimeout> | undefined;
        const hang = new Promise<string>((r) => (timer = setTimeout(() => r("blocked"), 20_000)));
        const outcome = await Promise.race([
          put.then(() => "stored", (e) => e instanceof ClassifiedError ? "refused" : String(e)),
          hang,
        ]);
        clearTimeout(timer);
        assertEquals(outcome, "refused", `size ${size}`);
        assertEquals(await target.readBack(`fifo/${size}.txt`), null);
      }
    });
    await t.step("unsafe paths are refused", async () => {
      await assertRejects(() => put("../escape.txt", bytes("no")), ClassifiedError);
      await assertRejects(() => put("a/../../escape.txt", bytes("no")), ClassifiedError);
    });
    await t.step("parallel puts all arrive", async () => {
      await Promise.all(
        Array.from({ length: 12 }, (_, i) => put(`par/f${i}.txt`, bytes(`file ${i}`))),
      );
      for (let i = 0; i < 12; i++) {
        assertEquals(await target.readBack(`par/f${i}.txt`), bytes(`file ${i}`));
      }
    });
    await t.step("a large file arrives intact", async () => {
      const size = target.largeSize ?? 6 * 1024 * 1024 + 123;
      const data = new Uint8Array(size);
      for (let i = 0; i < size; i += 65536) crypto.getRandomValues(data.subarray(i, i + 65536));
      const r = await put("big/large.bin", data);
      assertEquals(r.size, size);
      const back = await target.readBack("big/large.bin");
      assert(back !== null, "large file missing");
      assertEquals(back.length, size);
      assert(back.every((b, i) => b === data[i]), "large file differs");
    });
    if (isStater(transport)) {
      await t.step("stat reports size, null when missing", async () => {
        const st = await transport.stat("a.txt", { signal });
        assertEquals(st?.size, 14);
        if (st?.md5 !== undefined) assertEquals(st.md5, md5(bytes("second version")));
        assertEquals(await transport.stat("nope.txt", { signal }), null);
      });
      if (target.transporter && getTransportDef(target.transporter)?.storedMd5) {
        await t.step("stat with md5 reports the MD5 of what is stored (storedMd5)", async () => {
          const st = await transport.stat("a.txt", { signal, md5: true });
          assertEquals(st?.md5, md5(bytes("second version")));
          assertEquals(await transport.stat("nope.txt", { signal, md5: true }), null);
        });
      }
    }
    if (isMover(transport)) {
      await t.step("move renames on the server", async () => {
        await put("mv/from.txt", bytes("moving"));
        await put("mv/to.txt", bytes("old"));
        await transport.move("mv/from.txt", "mv/sub/to.txt", { signal });
        assertEquals(await target.readBack("mv/from.txt"), null);
        assertEquals(await target.readBack("mv/sub/to.txt"), bytes("moving"));
      });
    }
    if (isLister(transport)) {
      await t.step("list shows stored files and no temp files", async () => {
        const seen: string[] = [];
        for await (const e of transport.list("par", { signal })) seen.push(e.path);
        assertEquals(seen.sort(), Array.from({ length: 12 }, (_, i) => `par/f${i}.txt`).sort());
        const all: string[] = [];
        for await (const e of transport.list("", { signal })) all.push(e.path);
        assert(
          !all.some((p) => p.split("/").at(-1)!.startsWith(".fctmp-")),
          "temp file left behind",
        );
      });
    }
  } finally {
    await transport.close();
    await transport.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
}
