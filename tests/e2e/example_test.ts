/**
 * `deno task start` on a copy of the bundled example, on a machine without
 * jpegtran or gifsicle (PATH holds nothing): the stylesheet and script come
 * out minified under unique names, the PNG smaller with the same pixels, the
 * stylesheet's url()s point at the other files' unique URLs, and the run ends
 * by saying where to look and what to try next. A second run uploads nothing.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals } from "../_assert.ts";
import { pngToRgba } from "../processors/_helpers.ts";
import { workspace } from "../_harness.ts";

const EXAMPLE = path.resolve(import.meta.dirname!, "..", "..", "example");

async function start(dir: string, emptyPath: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", path.join(EXAMPLE, "start.ts")],
    cwd: path.dirname(dir),
    env: { NO_COLOR: "1", FC_EXAMPLE_DIR: dir, PATH: emptyPath },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("deno task start shows the processor chain on the example site, offline", async () => {
  const ws = workspace("fc-example-");
  try {
    const dir = path.join(ws.root, "example");
    fs.mkdirSync(dir);
    fs.cpSync(path.join(EXAMPLE, "site"), path.join(dir, "site"), { recursive: true });
    fs.copyFileSync(path.join(EXAMPLE, "config.xml"), path.join(dir, "config.xml"));
    const emptyPath = path.join(ws.root, "bin");
    fs.mkdirSync(emptyPath);

    const r = await start(dir, emptyPath);
    const log = r.stdout + r.stderr;
    assertEquals(r.code, 0, log);
    const out = path.join(dir, "out", "static");
    const published = (fs.readdirSync(out, { recursive: true }) as string[]).map((f) =>
      f.split(path.sep).join("/")
    );
    const one = (re: RegExp) => {
      const found = published.filter((f) => re.test(f));
      assertEquals(found.length, 1, `${re}: ${published.join(", ")}`);
      return found[0]!;
    };
    const css = one(/^css\/style_[0-9a-f]{16}\.css$/);
    const js = one(/^js\/app_[0-9a-f]{16}\.js$/);
    const png = one(/^images\/pattern_[0-9a-f]{16}\.png$/);
    const svg = one(/^images\/logo_[0-9a-f]{16}\.svg$/);
    const font = one(/^fonts\/example_[0-9a-f]{16}\.woff2$/);
    one(/^index\.html$/);

    // Minified and rewritten.
    const cssText = fs.readFileSync(path.join(out, css), "utf8");
    assert(!cssText.includes("/*") && cssText.split("\n").length <= 2, cssText);
    for (const f of [png, svg, font]) {
      assert(cssText.includes(`url(http://localhost:8080/static/${f})`), `${f} in ${cssText}`);
    }
    const jsText = fs.readFileSync(path.join(out, js), "utf8");
    const jsSource = fs.readFileSync(path.join(dir, "site", "js", "app.js"), "utf8");
    assert(!jsText.includes("/**") && jsText.length < jsSource.length / 2 + 50, jsText);
    // The PNG: smaller, same pixels.
    const before = new Uint8Array(fs.readFileSync(path.join(dir, "site", "images", "pattern.png")));
    const after = new Uint8Array(fs.readFileSync(path.join(out, png)));
    assert(after.length < before.length / 4, `${before.length} → ${after.length}`);
    assertEquals(pngToRgba(after), pngToRgba(before));

    // Where to look and what to try next.
    assert(r.stdout.includes(`example/out/static/${css}`), r.stdout);
    assert(
      /fileconveyor url --config example\/config\.xml example\/site\/css\/style\.css/.test(
        r.stdout,
      ),
      r.stdout,
    );
    assert(/fileconveyor status --config example\/config\.xml/.test(r.stdout), r.stdout);
    // Without jpegtran/gifsicle the run says so and goes on.
    assert(/jpegtran/.test(log), log);

    const again = await start(dir, emptyPath);
    assertEquals(again.code, 0, again.stdout + again.stderr);
    assert(
      /Done: 0 synced, 0 deleted, 0 failed, 7 unchanged|Done: 0 synced/.test(
        again.stdout + again.stderr,
      ),
      again.stdout + again.stderr,
    );
  } finally {
    ws.cleanup();
  }
});
