import { runTool } from "../../src/processors/_util.ts";
import { assertEquals } from "../_assert.ts";

Deno.test("runTool() streams large output while feeding stdin (no pipe deadlock)", async () => {
  const data = new Uint8Array(3_000_000).fill(65);
  const r = await runTool("cat", [], { stdin: data, timeoutMs: 20_000 });
  assertEquals(r.code, 0);
  assertEquals(r.timedOut, false);
  assertEquals(r.stdout.length, data.length);
});
