import { Buffer } from "node:buffer";
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals, assertIncludes, assertRejects } from "../_assert.ts";
import { ClassifiedError } from "../../src/errors.ts";
import { minifyText } from "../../src/processors/minify.ts";
import { enginePool } from "../../src/processors/_engine_pool.ts";
import { ref, run, SHOP, tempDir } from "./_helpers.ts";

function evaluate(code: string): unknown {
  return new Function(code + "\n;return selfTest();")();
}

function stable(v: unknown): string {
  return JSON.stringify(v, (_k, x) => typeof x === "bigint" ? `${x}n` : x);
}

for (
  const name of [
    "yui_compressor.YUICompressor",
    "google_closure_compiler.GoogleClosureCompiler",
    "minify.JS",
  ]
) {
  Deno.test(`${name} minifies JavaScript that computes the same results`, async () => {
    for (const f of ["app.js", "modern.js"]) {
      const file = path.join(SHOP, "js", f);
      const input = fs.readFileSync(file, "utf8");
      const out = await run(ref(name), file);
      const code = new TextDecoder().decode(out.bytes);
      assert(!out.unprocessed, `${f} was not minified`);
      assert(
        out.bytes.length < input.length * 0.8,
        `${f}: ${out.bytes.length} of ${input.length} bytes`,
      );
      assertEquals(stable(evaluate(code)), stable(evaluate(input)), f);
      assertEquals(out.name, f);
    }
  });
}

Deno.test("minify keeps legal comments and top-level names of classic scripts", async () => {
  const out = await run(ref("minify.JS"), path.join(SHOP, "js", "app.js"));
  const code = new TextDecoder().decode(out.bytes);
  assertIncludes(code, "/*! Example shop app v1.0 | (c) Example Ltd | MIT licence */");
  assertIncludes(code, "var SHOP_VERSION=");
  assertIncludes(code, "function selfTest()");
});

Deno.test("minify (target auto) never writes syntax the file does not use", async () => {
  const out = await run(ref("minify.JS"), path.join(SHOP, "js", "app.js"));
  const code = new TextDecoder().decode(out.bytes);
  for (const modern of ["??", "?.", "||=", "&&=", "=>", "`", "let ", "const "]) {
    assert(!code.includes(modern), `ES5 input got ${JSON.stringify(modern)}`);
  }
  const es5 =
    "function f(a){ try { g() } catch (e) {} return a != null ? a : a === null || a === void 0 ? void 0 : a.b }";
  const min = (await minifyText(es5, "js")).code;
  assert(!min.includes("??") && !min.includes("?.") && min.includes("catch("), min);
  // Modern input is not lowered: no helper variables appear.
  const modern = "class A { #x = 1; static y = {...z}; get x() { return this.#x ?? a?.b } }";
  const m = (await minifyText(modern, "js")).code;
  assertIncludes(m, "#");
  assert(!m.includes("defineProperty") && !m.includes("WeakMap"), m);
});

Deno.test("minify with an explicit target lowers as esbuild does", async () => {
  const m = (await minifyText("var e = x ?? 1;", "js", { target: "es2019" })).code;
  assert(!m.includes("??"), m);
});

Deno.test("minify.CSS minifies stylesheets and keeps their URLs", async () => {
  const file = path.join(SHOP, "css", "style.css");
  const input = fs.readFileSync(file, "utf8");
  const out = await run(ref("minify.CSS"), file);
  const css = new TextDecoder().decode(out.bytes);
  assert(out.bytes.length < input.length * 0.85, `${out.bytes.length} of ${input.length}`);
  for (
    const u of [
      "../img/bg.png",
      "/shop/img/photo.jpg",
      "data:image/gif;base64",
      "http://example.com/external.png",
      "#blur",
    ]
  ) {
    assertIncludes(css, u);
  }
  // 2017 browsers: no 8-digit hex colours.
  assert(!/#[0-9a-f]{8}\b/i.test(css), css);
  assertIncludes(css, "rgba(0,0,0,.87)");
});

Deno.test("yui_compressor handles CSS; google_closure_compiler leaves CSS alone", async () => {
  const file = path.join(SHOP, "css", "print.css");
  assert(!(await run(ref("yui_compressor.YUICompressor"), file)).unprocessed);
  assert((await run(ref("google_closure_compiler.GoogleClosureCompiler"), file)).unprocessed);
});

Deno.test("minify skips *.min.js unless skipMinified is false", async () => {
  const file = path.join(SHOP, "js", "lib.min.js");
  assert((await run(ref("minify.JS"), file)).unprocessed);
  const out = await run(ref("minify.JS", { skipMinified: "false" }), file);
  // Already minimal: the result is not smaller, so the input is kept.
  assert(out.unprocessed || out.bytes.length < fs.statSync(file).size);
});

Deno.test("minify fails a file with a syntax error as fatal, naming the line", async () => {
  const t = tempDir();
  try {
    const file = path.join(t.dir, "bad.js");
    fs.writeFileSync(file, "var ok = 1;\nfunction broken( {\n  return 2;\n}\n");
    const err = await assertRejects(
      () => run(ref("minify.JS"), file, { source: { name: "t", scanPath: t.dir } }),
      ClassifiedError,
      'Cannot minify "bad.js": line ',
    );
    assertEquals((err as ClassifiedError).kind, "fatal");
  } finally {
    t.cleanup();
  }
});

Deno.test("minify reads Latin-1 files without corrupting their strings", async () => {
  const t = tempDir();
  try {
    const file = path.join(t.dir, "latin1.js");
    const text = 'function selfTest() { var s = "caf\xe9 \xa3 5";   return s + "!"; }';
    fs.writeFileSync(file, Buffer.from(text, "latin1"));
    const out = await run(ref("minify.JS"), file, { source: { name: "t", scanPath: t.dir } });
    const code = new TextDecoder().decode(out.bytes);
    assert([...code].every((c) => c.charCodeAt(0) < 0x80), "output is ASCII");
    assertEquals(evaluate(code), "caf\xe9 \xa3 5!");
  } finally {
    t.cleanup();
  }
});

Deno.test("a chain that minifies twice with the same settings runs the engine once per file", async () => {
  const t = tempDir();
  try {
    // Content no other test minified: the skip must come from this chain's first run.
    const file = path.join(t.dir, "twice.js");
    fs.writeFileSync(
      file,
      "function selfTest() {\n  var total = 0;\n  for (var i = 0; i < 10; i++) { total = total + i; }\n  return total;\n}\n",
    );
    const once = await run(ref("minify.JS"), file);
    assert(!once.unprocessed, "the script was not minified");
    fs.appendFileSync(file, "var changedAfterwards = 1;\n");
    const jobs = enginePool().stats.jobs;
    const twice = await run(
      [ref("yui_compressor.YUICompressor"), ref("google_closure_compiler.GoogleClosureCompiler")],
      file,
    );
    assertEquals(enginePool().stats.jobs - jobs, 1, "engine jobs for YUI then Closure");
    assert(!twice.unprocessed, "the script was not minified");
    assertEquals(stable(evaluate(new TextDecoder().decode(twice.bytes))), "45");
    // A different setting is different work: it runs.
    const other = await run(
      [ref("minify.JS"), ref("minify.JS", { legalComments: "none" })],
      file,
    );
    assertEquals(enginePool().stats.jobs - jobs, 3, "engine jobs after a chain with two settings");
    assertEquals(stable(evaluate(new TextDecoder().decode(other.bytes))), "45");
  } finally {
    t.cleanup();
  }
});
