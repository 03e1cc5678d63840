/**
 * Regenerates the binary fixtures of `tests/testdata/site` (images, fonts).
 * They are committed; run this only to change them:
 *
 *     apt-get install imagemagick libimage-exiftool-perl
 *     deno run -A tests/processors/_make_fixtures.ts
 *
 * GIFs are written with omggif (deterministic); PNG and JPEG with
 * ImageMagick (`/usr/bin/convert`), EXIF with exiftool.
 *
 * @module
 */
// @ts-types="@types/omggif"
import { GifWriter } from "omggif";
import * as fs from "node:fs";
import * as path from "node:path";

const SITE = path.resolve(import.meta.dirname!, "..", "testdata", "site");
const IMG = path.join(SITE, "shop", "img");
const CONVERT = "/usr/bin/convert";

function run(cmd: string, args: string[]) {
  const out = new Deno.Command(cmd, { args, stdout: "inherit", stderr: "inherit" }).outputSync();
  if (out.code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed`);
}

function gif(file: string, width: number, height: number, palette: number[], frames: {
  pixels: (x: number, y: number) => number;
  transparent?: number;
  disposal?: number;
  x?: number;
  y?: number;
  w?: number;
  h?: number;
}[]) {
  const buf = new Uint8Array(1 << 20);
  const w = new GifWriter(
    buf,
    width,
    height,
    frames.length > 1 ? { palette, loop: 0 } : { palette },
  );
  for (const f of frames) {
    const fw = f.w ?? width, fh = f.h ?? height;
    const px: number[] = [];
    for (let y = 0; y < fh; y++) for (let x = 0; x < fw; x++) px.push(f.pixels(x, y));
    w.addFrame(f.x ?? 0, f.y ?? 0, fw, fh, px, {
      delay: 8,
      ...(f.transparent !== undefined ? { transparent: f.transparent } : {}),
      ...(f.disposal !== undefined ? { disposal: f.disposal } : {}),
    });
  }
  fs.writeFileSync(file, buf.subarray(0, w.end()));
}

fs.mkdirSync(IMG, { recursive: true });
fs.mkdirSync(path.join(SITE, "shared", "img"), { recursive: true });
fs.mkdirSync(path.join(SITE, "shop", "fonts"), { recursive: true });

// Static GIF with transparency: a 4-colour 48×48 badge (smaller as PNG).
const palette = [0x000000, 0xffffff, 0xcc3300, 0x3366cc];
gif(path.join(IMG, "icon.gif"), 48, 48, palette, [{
  pixels: (x, y) => {
    const d = Math.hypot(x - 23.5, y - 23.5);
    return d > 23 ? 0 : d > 20 ? 1 : (x + y) % 12 < 6 ? 2 : 3;
  },
  transparent: 0,
}]);

// Animated GIF: a 4-frame spinner with partial frames and disposal methods.
const spin = [0xffffff, 0x222222, 0x888888, 0xdddddd];
gif(
  path.join(IMG, "spinner.gif"),
  32,
  32,
  spin,
  [0, 1, 2, 3].map((k) => ({
    pixels: (x: number, y: number) => {
      const a = (Math.atan2(y - 15.5, x - 15.5) / Math.PI + 1) * 2; // 0..4
      const r = Math.hypot(x - 15.5, y - 15.5);
      if (r > 15 || r < 8) return 0;
      return 1 + ((Math.floor(a) + k) % 3);
    },
    ...(k > 0 ? { x: 0, y: 0 } : {}),
    transparent: 0,
    disposal: k % 2 === 0 ? 2 : 1,
  })),
);

// PNG with metadata (text, time, pHYs, bKGD): a 96×64 gradient with a shape.
run(CONVERT, [
  "-size",
  "96x64",
  "gradient:#cc3300-#3366cc",
  "-fill",
  "white",
  "-draw",
  "circle 48,32 60,32",
  "-set",
  "comment",
  "Example shop logo (c) Example Ltd",
  "-define",
  "png:include-chunk=tEXt,tIME,pHYs,bKGD,gAMA,cHRM",
  "-density",
  "72",
  path.join(IMG, "logo.png"),
]);
run(CONVERT, ["-size", "8x64", "gradient:#ffffff-#eeeeee", "-strip", path.join(IMG, "bg.png")]);
run(CONVERT, [
  "-size",
  "40x20",
  "xc:#3366cc",
  "-fill",
  "#ffcc00",
  "-draw",
  "rectangle 5,5 34,14",
  path.join(IMG, "with space.png"),
]);
run(CONVERT, [
  "-size",
  "120x30",
  "gradient:#222222-#999999",
  "-strip",
  path.join(SITE, "shared", "img", "banner.png"),
]);

// JPEGs: a ≥ 10 KB photo-like image and a small one, both with EXIF; one rotated.
run(CONVERT, [
  "-size",
  "320x220",
  "-seed",
  "42",
  "plasma:#ff9966-#336699",
  "-quality",
  "92",
  "-sampling-factor",
  "2x2",
  path.join(IMG, "photo.jpg"),
]);
run(CONVERT, [
  "-size",
  "48x48",
  "gradient:#ffcc00-#cc3300",
  "-quality",
  "85",
  path.join(IMG, "small.jpg"),
]);
run(CONVERT, [
  "-size",
  "64x48",
  "-seed",
  "7",
  "plasma:#66cc66-#224488",
  "-quality",
  "85",
  path.join(IMG, "rotated.jpg"),
]);
for (const f of ["photo.jpg", "small.jpg"]) {
  run("exiftool", [
    "-q",
    "-overwrite_original",
    "-Artist=Example Photographer",
    "-Copyright=(c) Example Ltd",
    "-Make=ExampleCam",
    "-Orientation#=1",
    "-ImageDescription=Fixture for File Conveyor tests",
    path.join(IMG, f),
  ]);
}
run("exiftool", [
  "-q",
  "-overwrite_original",
  "-Artist=Example",
  "-Orientation#=6",
  path.join(IMG, "rotated.jpg"),
]);

// Fonts: placeholders (content is irrelevant to the processors).
const font = (n: number) =>
  new Uint8Array(Array.from({ length: n }, (_, i) => (i * 37 + 11) & 255));
fs.writeFileSync(path.join(SITE, "shop", "fonts", "font.eot"), font(600));
fs.writeFileSync(path.join(SITE, "shop", "fonts", "font.woff2"), font(400));
fs.writeFileSync(path.join(SITE, "shop", "fonts", "font.ttf"), font(1500));
// deno-lint-ignore no-console
console.log("fixtures written to", SITE);
