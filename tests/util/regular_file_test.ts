/**
 * Every read of a source file goes through `src/util/regular_file.ts`: a FIFO
 * swapped in after the type check is refused at once, never opened for a
 * blocking read. Real FIFOs (`mkfifo`).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ClassifiedError } from "../../src/errors.ts";
import {
  openRegular,
  openRegularSync,
  readRegular,
  readRegularSync,
} from "../../src/util/regular_file.ts";
import { md5File } from "../../src/util/hash.ts";
import { md5Of } from "../../src/pipeline/upload.ts";
import { readInput } from "../../src/processors/_util.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "../_assert.ts";
import { mkfifo } from "../transports/_conformance.ts";

/** A regular file, then a FIFO in its place (what a swap between check and open leaves). */
async function swapped(): Promise<{ dir: string; file: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fc-regular-"));
  const file = path.join(dir, "a.txt");
  fs.writeFileSync(file, "checked as a regular file");
  fs.rmSync(file);
  await mkfifo(file);
  return { dir, file };
}

Deno.test("regular_file reads a regular file through the handle it checked", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fc-regular-"));
  try {
    const p = path.join(dir, "a.txt");
    fs.writeFileSync(p, "abc", { mode: 0o640 });
    fs.chmodSync(p, 0o640);
    assertEquals(new TextDecoder().decode(await readRegular(p)), "abc");
    const r = readRegularSync(p);
    assertEquals(new TextDecoder().decode(r.data), "abc");
    assertEquals(r.mode, 0o640);
    assertEquals(readRegularSync(p, 2).data.length, 2);
    assertEquals(await md5File(p), "900150983cd24fb0d6963f7d28e17f72");
    assertEquals(await md5File(p, undefined, 3), "900150983cd24fb0d6963f7d28e17f72");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("regular_file refuses a FIFO swapped in, without blocking, on every read path", async () => {
  const { dir, file } = await swapped();
  try {
    // Each of these blocked forever on a plain open of a FIFO without a writer.
    assertThrows(() => openRegularSync(file), ClassifiedError, "FIFO");
    assertThrows(() => readRegularSync(file), ClassifiedError, "FIFO");
    await assertRejects(() => openRegular(file), ClassifiedError, "FIFO");
    await assertRejects(() => readRegular(file), ClassifiedError, "FIFO");
    const signal = new AbortController().signal;
    // Hashing: small (synchronous) and large (handle) paths.
    await assertRejects(() => md5File(file, signal, 10), ClassifiedError, "FIFO");
    await assertRejects(() => md5File(file, signal, 64 * 1024 * 1024), ClassifiedError, "FIFO");
    await assertRejects(() => md5File(file), ClassifiedError, "FIFO");
    await assertRejects(() => md5Of(file, signal, 10), ClassifiedError, "FIFO");
    // The processors' input.
    await assertRejects(
      () => readInput({ path: file, name: "a.txt", originalPath: file, relDir: "" }),
      ClassifiedError,
      "FIFO",
    );
    const e = assertThrows(() => openRegularSync(dir), ClassifiedError);
    assert(e.message.includes("a directory"), e.message);
    assertEquals((e as ClassifiedError).kind, "retry");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
