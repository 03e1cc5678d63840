/**
 * The watcher probe: a busy main thread is not a stalled watcher; a watcher
 * thread blocked on a FIFO is.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { assert, assertEquals } from "../_assert.ts";
import { sleep } from "../_harness.ts";
import { startFifoReleaser } from "../../src/watch/fifo_release.ts";
import { WatchProbe } from "../../src/watch/probe.ts";

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "fc-probe-"));
}

/**
 * Run in a process of its own: under the test runner the order in which a late timer and a
 * waiting watch event are delivered varies, in a plain process the timer comes first.
 */
const BUSY_SCRIPT = `
import { WatchProbe } from ${
  JSON.stringify(new URL("../../src/watch/probe.ts", import.meta.url).href)
};
const probe = new WatchProbe({ dir: Deno.args[0], interval: 100, timeout: 200 });
const verdicts = [];
probe.listen((s) => verdicts.push(s));
probe.start();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
await sleep(500);
for (let i = 0; i < 5; i++) {
  const t = Date.now();
  while (Date.now() - t < 1000) { /* a long synchronous stretch */ }
  await sleep(0);
}
await sleep(500);
probe.close();
console.log(JSON.stringify(verdicts));
`;

Deno.test("WatchProbe: a main thread busy for seconds at a time (a long scan) is not a stalled watcher", async () => {
  const root = tempDir();
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--ext=js", BUSY_SCRIPT, path.join(root, "probe")],
      stderr: "inherit",
    }).output();
    assertEquals(out.code, 0);
    assertEquals(new TextDecoder().decode(out.stdout).trim(), "[]");
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

Deno.test({
  name: "WatchProbe: a watcher thread blocked opening a FIFO is found stalled",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const root = tempDir();
    const watched = path.join(root, "watched");
    fs.mkdirSync(watched);
    const probe = new WatchProbe({ dir: path.join(root, "probe"), interval: 100, timeout: 200 });
    const verdicts: boolean[] = [];
    probe.listen((s) => verdicts.push(s));
    const fsw = Deno.watchFs(watched);
    try {
      probe.start();
      await sleep(300);
      const fifo = path.join(watched, "pipe");
      await new Deno.Command("mkfifo", { args: [fifo] }).output();
      for (let i = 0; i < 100 && !verdicts.includes(true); i++) await sleep(50);
      assertEquals(verdicts, [true]);
      assert(probe.stalled);
    } finally {
      // The watcher thread opens the FIFO again on later events; closing the watch waits for it.
      const releaser = await startFifoReleaser([watched]);
      try {
        probe.close();
        fsw.close();
      } finally {
        releaser.stop();
      }
      fs.rmSync(root, { recursive: true, force: true });
    }
  },
});
