import { render } from "../../scripts/build/docs.ts";
import { assert } from "../_assert.ts";

Deno.test("README tables match the option schemas (run `deno task docs`)", () => {
  const readme = Deno.readTextFileSync(new URL("../../README.md", import.meta.url));
  assert(render(readme) === readme, "README.md is out of date: run `deno task docs`");
});

Deno.test("README quick start and CI use the same test command", () => {
  const readme = Deno.readTextFileSync(new URL("../../README.md", import.meta.url));
  const ci = Deno.readTextFileSync(new URL("../../.ci/run", import.meta.url));
  const cmd = "npx -y deno@2.9.6 task test";
  assert(readme.includes(cmd), "README lacks the test command");
  assert(
    ci.split("\n").some((l) => l.trim() === cmd),
    ".ci/run does not run the README's test command",
  );
});
