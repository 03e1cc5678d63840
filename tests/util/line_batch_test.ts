/**
 * LineBatch: lines are written together, a warning or an error at once with
 * what is before it, and what is pending is not lost when the process ends
 * (exit, an uncaught error, an unhandled rejection).
 */
import * as path from "node:path";
import { assertEquals } from "../_assert.ts";
import { LineBatch } from "../../src/util/line_batch.ts";

Deno.test("LineBatch writes the lines of one turn in one write, an urgent line at once", async () => {
  const writes: string[] = [];
  const batch = new LineBatch((text) => writes.push(text));
  try {
    batch.add("a");
    batch.add("b");
    assertEquals(writes, []);
    batch.add("warn", true);
    assertEquals(writes, ["a\nb\nwarn\n"]);
    batch.add("c");
    batch.add("d");
    await new Promise((r) => setTimeout(r, 0));
    await new Promise((r) => setTimeout(r, 0));
    assertEquals(writes, ["a\nb\nwarn\n", "c\nd\n"]);
  } finally {
    batch.close();
  }
});

const LOG = path.resolve(import.meta.dirname!, "../../src/log.ts");

async function run(ending: string): Promise<{ code: number; stderr: string }> {
  const code = `import { logger } from ${JSON.stringify(LOG)};
const log = logger("t");
log.info("first info");
log.info("last info");
${ending}`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-check", code],
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

for (
  const [name, ending, code] of [
    ["Deno.exit", "Deno.exit(3);", 3],
    ["an uncaught error", 'queueMicrotask(() => {\n  throw new Error("boom");\n});', 1],
    ["an unhandled rejection", 'Promise.reject(new Error("boom"));', 1],
    ["the end of the program", "", 0],
  ] as const
) {
  Deno.test(`log lines still pending are written on ${name}`, async () => {
    const r = await run(ending);
    assertEquals(r.code, code, r.stderr);
    const lines = r.stderr.split("\n").filter((l) => l.includes("[t]"));
    assertEquals(lines.map((l) => l.slice(l.indexOf("[t]"))), [
      "[t] first info",
      "[t] last info",
    ]);
  });
}
