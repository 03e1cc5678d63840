import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals, assertIncludes, assertRejects } from "../_assert.ts";
import { ClassifiedError } from "../../src/errors.ts";
import { setupProcessors } from "../../src/processors/chain.ts";
import { renameWith, splitCommand } from "../../src/processors/command.ts";
import { ref, run, SHOP } from "./_helpers.ts";

const README = path.join(SHOP, "data", "readme.txt");
const text = () => fs.readFileSync(README, "utf8");

Deno.test("splitCommand splits like a shell without expanding anything", () => {
  assertEquals(splitCommand(`a  'b c' "d \\"e\\"" f\\ g --x={in} $HOME`), [
    "a",
    "b c",
    'd "e"',
    "f g",
    "--x={in}",
    "$HOME",
  ]);
  assertEquals(splitCommand(`x ''`), ["x", ""]);
});

Deno.test("renameWith replaces the extension or fills a template", () => {
  assertEquals(renameWith("a.png", ".webp"), "a.webp");
  assertEquals(renameWith("a.png", "webp"), "a.webp");
  assertEquals(renameWith("a.js", "{stem}.min{ext}"), "a.min.js");
  assertEquals(renameWith("a.js", undefined), "a.js");
});

Deno.test("command with {in} and {out} writes a new file", async () => {
  const out = await run(ref("command", { command: "cp {in} {out}", rename: ".copy" }), README);
  assertEquals(out.name, "readme.copy");
  assertEquals(new TextDecoder().decode(out.bytes), text());
});

Deno.test("command without {out} uses standard output; without {in} feeds standard input", async () => {
  const out = await run(ref("command", { command: "tr a-z A-Z" }), README);
  assertEquals(new TextDecoder().decode(out.bytes), text().toUpperCase());
  const out2 = await run(ref("command", { command: "head -c 7 {in}" }), README);
  assertEquals(new TextDecoder().decode(out2.bytes), text().slice(0, 7));
});

Deno.test("command inplace edits a private copy, never the source", async () => {
  const before = text();
  const out = await run(
    ref("command", { command: "sh -c 'echo extra >> \"$1\"' sh {in}", output: "inplace" }),
    README,
  );
  assertEquals(new TextDecoder().decode(out.bytes), before + "extra\n");
  assertEquals(text(), before);
});

Deno.test("command shell=true runs sh -c with quoted paths", async () => {
  const out = await run(
    ref("command", { command: "wc -l < {in} | tr -d ' ' > {out}", shell: "true" }),
    README,
  );
  assertEquals(new TextDecoder().decode(out.bytes).trim(), String(text().split("\n").length - 1));
});

Deno.test("command extensions limits the files it runs on", async () => {
  assert(
    (await run(ref("command", { command: "tr a-z A-Z", extensions: "css:js" }), README))
      .unprocessed,
  );
});

Deno.test("command failures are fatal and quote standard error", async () => {
  const err = await assertRejects(
    () => run(ref("command", { command: "sh -c 'echo broken input >&2; exit 3'" }), README),
    ClassifiedError,
    'failed on "data/readme.txt" with exit status 3: broken input',
  );
  assertEquals((err as ClassifiedError).kind, "fatal");
  await assertRejects(
    () => run(ref("command", { command: "sleep 5", timeout: "1" }), README),
    ClassifiedError,
    "timed out after 1 s",
  );
  await assertRejects(
    () => run(ref("command", { command: "true" }), README),
    ClassifiedError,
    "wrote nothing",
  );
  await assertRejects(
    () => run(ref("command", { command: "true {in} {out}" }), README),
    ClassifiedError,
    "did not create its output",
  );
});

Deno.test("command checks the program at setup", async () => {
  const problems = await setupProcessors([ref("command", { command: "no-such-program-xyz {in}" })]);
  assertEquals(problems.length, 1);
  assertIncludes(problems[0]!, '"no-such-program-xyz"');
  assertIncludes(problems[0]!, "was not found on PATH");
});
