import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { callDeadline, hexToBase64, md5Hex } from "../../src/transports/_common.ts";
import { encodePath } from "../../src/transports/paths.ts";
import { assert, assertEquals } from "../_assert.ts";

Deno.test("md5Hex and hexToBase64 give what node:crypto and Buffer give", () => {
  for (const n of [0, 1, 55, 64, 4096]) {
    const data = new Uint8Array(n).map((_, i) => (i * 7) & 255);
    const hex = md5Hex(data);
    assertEquals(hex, createHash("md5").update(data).digest("hex"));
    assertEquals(hexToBase64(hex), Buffer.from(hex, "hex").toString("base64"));
  }
});

Deno.test("encodePath leaves unreserved paths alone and encodes the rest per segment", () => {
  const slow = (p: string) =>
    p.split("/").map((s) =>
      encodeURIComponent(s).replace(
        /[!'()*]/g,
        (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase(),
      )
    ).join("/");
  for (const p of ["a/b-c_d.e~f", "", "/x//y/", "a b/c+d", "ü/(1)!*'", "%41/#?&=", "A.Z/0_9"]) {
    assertEquals(encodePath(p), slow(p), p);
  }
});

Deno.test("call deadlines share one timer: each times out on its own, the others run on", async () => {
  const caller = new AbortController();
  const long = callDeadline(caller.signal, 60_000);
  const short = callDeadline(caller.signal, 20);
  const shorter = callDeadline(caller.signal, 10);
  await new Promise<void>((resolve) => short.signal.addEventListener("abort", () => resolve()));
  assert(shorter.signal.aborted && shorter.timedOut(), "the earlier deadline passed first");
  assertEquals((short.signal.reason as DOMException).name, "TimeoutError");
  assert(short.timedOut());
  assert(!long.signal.aborted && !long.timedOut(), "a later deadline is still running");
  // The caller's abort reaches a running call, which did not time out.
  caller.abort(new Error("stop"));
  assertEquals((long.signal.reason as Error).message, "stop");
  assert(!long.timedOut());
  for (const d of [long, short, shorter]) d.done();
  // A call that ended is never aborted later.
  const done = callDeadline(new AbortController().signal, 5);
  done.done();
  const after = callDeadline(new AbortController().signal, 15);
  await new Promise<void>((resolve) => after.signal.addEventListener("abort", () => resolve()));
  assert(!done.signal.aborted && !done.timedOut());
  after.done();
});
