import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { setupProcessors } from "../../src/processors/chain.ts";
import { ref, run, SHOP, tempDir } from "./_helpers.ts";

const README = path.join(SHOP, "data", "readme.txt");
const APP = path.join(SHOP, "js", "app.js");

Deno.test("compress.Both adds .gz and .br variants that decompress to the file", async () => {
  const input = fs.readFileSync(APP);
  const out = await run(ref("compress.Both"), APP);
  assert(out.unprocessed, "the main file is untouched");
  assertEquals(out.extras.map((x) => x.name), ["app.js.gz", "app.js.br"]);
  const [gz, br] = out.extras;
  assertEquals(gz!.contentEncoding, "gzip");
  assertEquals(br!.contentEncoding, "br");
  assertEquals(gz!.contentType, "text/javascript; charset=utf-8");
  assertEquals(zlib.gunzipSync(fs.readFileSync(gz!.path)), input);
  assertEquals(zlib.brotliDecompressSync(fs.readFileSync(br!.path)), input);
  assert(fs.statSync(br!.path).size < fs.statSync(gz!.path).size, "brotli beats gzip");
});

Deno.test("compress.Gzip skips small files, other extensions, and incompressible content", async () => {
  const t = tempDir();
  try {
    const source = { name: "t", scanPath: t.dir };
    assertEquals((await run(ref("compress.Gzip"), path.join(SHOP, "css", "print.css"))).extras, []); // < 1024 bytes
    assertEquals(
      (await run(ref("compress.Gzip", { minSize: "10" }), path.join(SHOP, "css", "print.css")))
        .extras.length,
      1,
    );
    assertEquals((await run(ref("compress.Gzip"), path.join(SHOP, "img", "photo.jpg"))).extras, []); // not a text type
    const noise = path.join(t.dir, "noise.txt");
    fs.writeFileSync(noise, crypto.getRandomValues(new Uint8Array(4096)));
    assertEquals((await run(ref("compress.Gzip"), noise, { source })).extras, []); // not smaller
    assertEquals((await run(ref("compress.Gzip", { extensions: "css" }), README)).extras, []);
    assertEquals(
      (await run(ref("compress.Gzip", { extensions: "txt,css" }), README)).extras.length,
      1,
    );
  } finally {
    t.cleanup();
  }
});

Deno.test("compress.Gzip inplace replaces the file with its gzip form", async () => {
  const out = await run(ref("compress.Gzip", { inplace: "true" }), README);
  assertEquals(out.name, "readme.txt");
  assertEquals(out.contentEncoding, "gzip");
  assertEquals(out.extras, []);
  assertEquals(zlib.gunzipSync(out.bytes), fs.readFileSync(README));
});

Deno.test("compress.Both refuses inplace at setup", async () => {
  const problems = await setupProcessors([ref("compress.Both", { inplace: "true" })]);
  assertEquals(problems.length, 1);
  assertIncludes(problems[0]!, 'inplace="true" needs a single encoding');
});

Deno.test("compress variants follow a later rename of the main file", async () => {
  const out = await run([ref("compress.Gzip"), ref("unique_filename.MD5")], README);
  assert(/^readme_[0-9a-f]{32}\.txt$/.test(out.name), out.name);
  assertEquals(out.extras.map((x) => x.name), [out.name + ".gz"]);
});
