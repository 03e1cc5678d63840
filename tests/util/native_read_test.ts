/**
 * The local copy's read of small files through the C library: the same
 * bytes and permission bits as the `node:fs` read, at most `expected` + 1
 * bytes, and no answer (undefined, nothing left open) for what is not a
 * regular file or cannot be opened, so the caller's `node:fs` read reports
 * it. Real files and FIFOs (`mkfifo`).
 *
 * @module
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { readRegularNative } from "../../src/util/_native_read.ts";
import { readRegularSync } from "../../src/util/regular_file.ts";
import { assert, assertEquals } from "../_assert.ts";
import { mkfifo } from "../transports/_conformance.ts";

const native = Deno.build.os === "linux" && ["x86_64", "aarch64"].includes(Deno.build.arch);

/** Open descriptors of this process (Linux). */
const openFds = () => fs.readdirSync("/proc/self/fd").length;

Deno.test({
  name: "native read gives the bytes and mode node:fs gives, up to expected + 1 bytes",
  ignore: !native,
  fn() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fc-native-read-"));
    try {
      const cases: [string, number, number][] = [
        ["empty", 0, 0o600],
        ["a.txt", 5, 0o640],
        ["naïve ✓.css", 4096, 0o644],
        ["big.bin", 256 * 1024, 0o755],
      ];
      for (const [name, size, mode] of cases) {
        const p = path.join(dir, name);
        const bytes = new Uint8Array(size).map((_, i) => (i * 7 + 3) & 0xff);
        fs.writeFileSync(p, bytes);
        fs.chmodSync(p, mode);
        const r = readRegularNative(p, size);
        assert(r !== undefined, `no native answer for ${name}`);
        assertEquals(r.data, bytes);
        assertEquals(r.mode, mode);
        assertEquals(r.mode, readRegularSync(p).mode);
        // Grown since its stat: one byte more than expected is read (the size check finds it).
        if (size > 0) assertEquals(readRegularNative(p, size - 1)!.data.length, size);
        // Shrunk since its stat: what is there.
        assertEquals(readRegularNative(p, size + 10)!.data, bytes);
      }
      // A symlink to a regular file is read through, as node:fs reads it.
      fs.symlinkSync("a.txt", path.join(dir, "link"));
      assertEquals(readRegularNative(path.join(dir, "link"), 5)!.data.length, 5);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
});

Deno.test({
  name: "native read leaves FIFOs, directories, missing and unreadable paths to node:fs",
  ignore: !native,
  async fn() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fc-native-read-"));
    try {
      const fifo = path.join(dir, "fifo");
      await mkfifo(fifo);
      fs.symlinkSync("fifo", path.join(dir, "fifolink"));
      const before = openFds();
      // Each would block forever on a plain open of a FIFO without a writer.
      assertEquals(readRegularNative(fifo, 10), undefined);
      assertEquals(readRegularNative(path.join(dir, "fifolink"), 10), undefined);
      assertEquals(readRegularNative(dir, 10), undefined);
      assertEquals(readRegularNative(path.join(dir, "missing"), 10), undefined);
      // A NUL would cut the C string to another path.
      fs.writeFileSync(path.join(dir, "a"), "x");
      assertEquals(readRegularNative(path.join(dir, "a") + "\0b", 1), undefined);
      assertEquals(readRegularNative(path.join(dir, "a"), 1)!.data.length, 1);
      assertEquals(openFds(), before, "a descriptor was left open");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
});

Deno.test("native read answers nothing without the FFI permission", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fc-native-read-"));
  try {
    const p = path.join(dir, "a");
    fs.writeFileSync(p, "abc");
    const module = new URL("../../src/util/_native_read.ts", import.meta.url).href;
    const code = `import { readRegularNative } from ${JSON.stringify(module)};
      console.log(String(readRegularNative(${JSON.stringify(p)}, 3)));`;
    const script = path.join(dir, "probe.ts");
    fs.writeFileSync(script, code);
    // `deno eval` grants everything: a script run with read and write only.
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", "--allow-read", "--allow-write", script],
    }).output();
    assert(out.success, new TextDecoder().decode(out.stderr));
    assertEquals(new TextDecoder().decode(out.stdout).trim(), "undefined");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
