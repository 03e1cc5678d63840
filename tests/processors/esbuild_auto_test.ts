/**
 * `target="auto"` decides between ES5 and modern output with one esbuild
 * run per script (the engine, in this process, with its transforms
 * counted), and an ES5 script stays ES5.
 */
import * as esbuild from "esbuild-wasm/esm/browser.js";
import { assert, assertEquals, assertIncludes, assertRejects } from "../_assert.ts";
import { isEs5, minifyWith } from "../../src/processors/_esbuild_minify.ts";
import { wasmBytes } from "../../src/processors/_wasm.ts";

let ready: Promise<void> | undefined;
let transforms = 0;
const counted = {
  ...esbuild,
  transform: (code: string, options: esbuild.TransformOptions) => {
    transforms++;
    return esbuild.transform(code, options);
  },
} as typeof esbuild;

async function minify(code: string): Promise<{ code: string; runs: number }> {
  ready ??= wasmBytes("esbuild").then(async (b) =>
    esbuild.initialize({
      wasmModule: await WebAssembly.compile(b as Uint8Array<ArrayBuffer>),
      worker: false,
    })
  );
  await ready;
  const before = transforms;
  const out = await minifyWith(counted, code, "js");
  return { code: out.code, runs: transforms - before };
}

const ES5_ONLY_NOT = ["=>", "`", "let ", "const ", "??", "?.", "catch{", "\\u{", '<"u"'];

Deno.test("target auto: an ES5 script is minified once, for es5, and stays ES5", async () => {
  const es5 = [
    "(function (root) {",
    '  var name = "x\\ud83d\\ude00", value = 1;',
    "  var o = { name: name, value: value, text: 'a\\nb' };",
    '  if (typeof module != "undefined") module.exports = o;',
    "  try { root.f(o) } catch (e) {}",
    "  return o.value != null ? o.value : 0;",
    "})(this);",
  ].join("\n");
  assert(isEs5(es5));
  const out = await minify(es5);
  assertEquals(out.runs, 1);
  for (const modern of ES5_ONLY_NOT) {
    assert(!out.code.includes(modern), `ES5 input got ${JSON.stringify(modern)}: ${out.code}`);
  }
  // No shorthand properties either.
  assertIncludes(out.code, "name:");
});

Deno.test("target auto: a modern script is minified once, not lowered", async () => {
  for (
    const modern of [
      "const f = (a) => `${a}!`; class A { #x = 1; get x() { return this.#x ?? f?.(1) } }",
      // Already minified, one long line (the ES5 probe of old printed these again first).
      "let a=1;" + "a+=1;".repeat(400) + "export{a};",
    ]
  ) {
    assert(!isEs5(modern));
    const out = await minify(modern);
    assertEquals(out.runs, 1, modern.slice(0, 40));
    assert(!out.code.includes("defineProperty") && !out.code.includes("WeakMap"), out.code);
  }
});

Deno.test("target auto: an ES5 module body (import/export only) counts as ES5", async () => {
  const mod = 'import a from "./a.js";\nvar b = { a: a };\nexport default b;\nexport { a };\n';
  assert(isEs5(mod));
  const out = await minify(mod);
  assertEquals(out.runs, 1);
  // For es5: the property is written out, not as a shorthand.
  assert(/\{a:\w+\}/.test(out.code), out.code);
});

Deno.test("target auto: a syntax error is reported once, by the esnext run", async () => {
  assert(!isEs5("var ok = 1;\nfunction broken( {\n"));
  const before = transforms;
  await assertRejects(() => minify("var ok = 1;\nfunction broken( {\n"));
  assertEquals(transforms - before, 1);
});
