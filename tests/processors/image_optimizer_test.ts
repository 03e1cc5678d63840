import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { setupProcessors } from "../../src/processors/chain.ts";
import { pngChunks, pngMetadataChunks, sniffImage } from "../../src/processors/_image_formats.ts";
import {
  djpeg,
  gifFrames,
  jpegHasExif,
  jpegIsProgressive,
  normaliseAlpha,
  pngToRgba,
  ref,
  run,
  SHOP,
  tempDir,
} from "./_helpers.ts";

const IMG = path.join(SHOP, "img");
const read = (f: string) => new Uint8Array(fs.readFileSync(f));

Deno.test("image_optimizer.Max: PNG gets smaller, loses metadata, keeps every pixel", async () => {
  const file = path.join(IMG, "logo.png");
  const input = read(file);
  assert(pngMetadataChunks(input).includes("tEXt"), "fixture has text chunks");
  const out = await run(ref("image_optimizer.Max"), file);
  assertEquals(out.name, "logo.png");
  assert(out.bytes.length < input.length, `${out.bytes.length} >= ${input.length}`);
  assertEquals(pngMetadataChunks(out.bytes), []);
  assertEquals(pngToRgba(out.bytes), pngToRgba(input));
  // Colour management stays.
  assert(
    pngChunks(out.bytes).some((c) => c.type === "gAMA" || c.type === "sRGB"),
    "gAMA/sRGB kept",
  );
});

Deno.test("image_optimizer.KeepMetadata: PNG keeps its text chunks", async () => {
  const file = path.join(IMG, "logo.png");
  const out = await run(ref("image_optimizer.KeepMetadata"), file);
  const types = pngChunks(out.bytes).map((c) => c.type);
  assert(types.includes("tEXt") && types.includes("tIME"), types.join(","));
  assertEquals(pngToRgba(out.bytes), pngToRgba(read(file)));
});

Deno.test("image_optimizer: JPEG ≥ 10 KB becomes progressive, EXIF stripped, pixels identical", async () => {
  const file = path.join(IMG, "photo.jpg");
  const input = read(file);
  assert(input.length >= 10 * 1024 && jpegHasExif(input));
  const out = await run(ref("image_optimizer.Max"), file);
  assert(out.bytes.length < input.length, `${out.bytes.length} >= ${input.length}`);
  assert(jpegIsProgressive(out.bytes), "progressive");
  assert(!jpegHasExif(out.bytes), "EXIF stripped");
  assertEquals(djpeg(out.bytes), djpeg(input));
});

Deno.test("image_optimizer: small JPEG stays baseline; KeepMetadata keeps EXIF", async () => {
  const file = path.join(IMG, "small.jpg");
  const input = read(file);
  const max = await run(ref("image_optimizer.KeepFilename"), file);
  assert(max.unprocessed || !jpegIsProgressive(max.bytes), "baseline below 10 KB");
  assertEquals(djpeg(max.bytes), djpeg(input));
  const keep = await run(
    ref("image_optimizer.KeepMetadataAndFilename"),
    path.join(IMG, "photo.jpg"),
  );
  assert(jpegHasExif(keep.bytes), "EXIF kept");
  assertEquals(djpeg(keep.bytes), djpeg(read(path.join(IMG, "photo.jpg"))));
});

Deno.test("image_optimizer: a JPEG rotated by EXIF keeps its metadata even with Max", async () => {
  const file = path.join(IMG, "rotated.jpg");
  const out = await run(ref("image_optimizer.Max"), file);
  assert(jpegHasExif(out.bytes), "orientation kept");
  assertEquals(djpeg(out.bytes), djpeg(read(file)));
});

Deno.test("image_optimizer.Max: a static GIF becomes a smaller PNG with identical pixels", async () => {
  const file = path.join(IMG, "icon.gif");
  const input = read(file);
  const out = await run(ref("image_optimizer.Max"), file);
  assertEquals(out.name, "icon.png");
  assertEquals(sniffImage(out.bytes), "png");
  assert(out.bytes.length < input.length, `${out.bytes.length} >= ${input.length}`);
  const [frame] = gifFrames(input);
  assertEquals(normaliseAlpha(pngToRgba(out.bytes)), frame);
});

Deno.test("image_optimizer.KeepFilename: a GIF stays a GIF (gifsicle) with identical pixels", async () => {
  const file = path.join(IMG, "icon.gif");
  const out = await run(ref("image_optimizer.KeepFilename"), file);
  assertEquals(out.name, "icon.gif");
  assertEquals(sniffImage(out.bytes), "gif");
  assertEquals(gifFrames(out.bytes), gifFrames(read(file)));
});

Deno.test("image_optimizer.Max: an animated GIF stays an animated GIF, every frame identical", async () => {
  const file = path.join(IMG, "spinner.gif");
  const input = read(file);
  const out = await run(ref("image_optimizer.Max"), file);
  assertEquals(out.name, "spinner.gif");
  assertEquals(sniffImage(out.bytes), "gif");
  assert(out.bytes.length <= input.length);
  const a = gifFrames(input), b = gifFrames(out.bytes);
  assertEquals(b.length, a.length);
  assertEquals(b, a);
});

Deno.test("image_optimizer never publishes a larger file: an optimal PNG passes through", async () => {
  const t = tempDir();
  try {
    const first = await run(ref("image_optimizer.Max"), path.join(IMG, "logo.png"));
    const file = path.join(t.dir, "optimal.png");
    fs.writeFileSync(file, first.bytes);
    const again = await run(ref("image_optimizer.Max"), file, {
      source: { name: "t", scanPath: t.dir },
    });
    assert(again.unprocessed, "already optimal: the source is published as is");
  } finally {
    t.cleanup();
  }
});

Deno.test("image_optimizer passes corrupt and misnamed images through", async () => {
  const t = tempDir();
  try {
    const bad = path.join(t.dir, "bad.png");
    fs.writeFileSync(
      bad,
      new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 1, 2, 3]),
    );
    const text = path.join(t.dir, "text.jpg");
    fs.writeFileSync(text, "not an image at all");
    const source = { name: "t", scanPath: t.dir };
    assert((await run(ref("image_optimizer.Max"), bad, { source })).unprocessed);
    assert((await run(ref("image_optimizer.Max"), text, { source })).unprocessed);
    // A PNG named .gif is optimised as a PNG.
    const png = path.join(t.dir, "really-png.gif");
    fs.copyFileSync(path.join(IMG, "logo.png"), png);
    const out = await run(ref("image_optimizer.Max"), png, { source });
    assertEquals(sniffImage(out.bytes), "png");
  } finally {
    t.cleanup();
  }
});

Deno.test("image_optimizer: a missing jpegtran fails setup with the apt package, or warns", async () => {
  const problems = await setupProcessors([
    ref("image_optimizer.Max", { jpegtran: "/nonexistent/jpegtran" }),
  ]);
  assertEquals(problems.length, 1);
  assertIncludes(
    problems[0]!,
    "needs `/nonexistent/jpegtran` for JPEG files: apt-get install libjpeg-turbo-progs",
  );
  const warn = ref("image_optimizer.Max", {
    jpegtran: "/nonexistent/jpegtran",
    missingTools: "warn",
  });
  assertEquals(await setupProcessors([warn]), []);
  const out = await run(warn, path.join(IMG, "photo.jpg"));
  assert(out.unprocessed, "JPEG passes through without jpegtran");
  // PNGs are still optimised.
  assert(!(await run(warn, path.join(IMG, "logo.png"))).unprocessed);
});
