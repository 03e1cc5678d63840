import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals } from "../_assert.ts";
import { ref, run, SHOP, tempDir } from "./_helpers.ts";

const SPACE = path.join(SHOP, "img", "with space.png");

Deno.test("filename.SpacesToUnderscores and SpacesToDashes rename without copying", async () => {
  const u = await run(ref("filename.SpacesToUnderscores"), SPACE);
  assertEquals(u.name, "with_space.png");
  assertEquals(u.path, SPACE);
  assert(u.unprocessed);
  assertEquals((await run(ref("filename.SpacesToDashes"), SPACE)).name, "with-space.png");
  assertEquals(
    (await run(ref("filename.SpacesToDashes"), path.join(SHOP, "js", "app.js"))).name,
    "app.js",
  );
});

Deno.test("unique_filename.Mtime appends the source's mtime in whole seconds", async () => {
  const t = tempDir();
  try {
    const file = path.join(t.dir, "logo.gif");
    fs.writeFileSync(file, "GIF89a");
    fs.utimesSync(file, 1240668971.75, 1240668971.75);
    const source = { name: "t", scanPath: t.dir };
    assertEquals(
      (await run(ref("unique_filename.Mtime"), file, { source })).name,
      "logo_1240668971.gif",
    );
    for (
      const [name, expected] of [["README", "README_1240668971"], [
        ".htaccess",
        ".htaccess_1240668971",
      ], ["a.min.js", "a.min_1240668971.js"]]
    ) {
      const f = path.join(t.dir, name!);
      fs.writeFileSync(f, "x");
      fs.utimesSync(f, 1240668971, 1240668971);
      assertEquals((await run(ref("unique_filename.Mtime"), f, { source })).name, expected);
    }
  } finally {
    t.cleanup();
  }
});

Deno.test("unique_filename.MD5 hashes the original; ContentHash hashes the processed content", async () => {
  const file = path.join(SHOP, "js", "app.js");
  const md5 = createHash("md5").update(fs.readFileSync(file)).digest("hex");
  const chain = [ref("minify.JS"), ref("unique_filename.MD5")];
  const out = await run(chain, file);
  assertEquals(out.name, `app_${md5}.js`);
  const hashed = await run([ref("minify.JS"), ref("unique_filename.ContentHash")], file);
  const sha = createHash("sha256").update(hashed.bytes).digest("hex").slice(0, 16);
  assertEquals(hashed.name, `app_${sha}.js`);
  const short = await run(
    [ref("unique_filename.ContentHash", { algorithm: "md5", length: "8" })],
    file,
  );
  assertEquals(short.name, `app_${md5.slice(0, 8)}.js`);
});

Deno.test("unique_filename.ContentHash differs per server when link_updater's output does", async () => {
  const css = path.join(SHOP, "css", "print.css");
  const chain = [ref("link_updater.CSSURLUpdater"), ref("unique_filename.ContentHash")];
  const a = await run(chain, css, {
    server: "a",
    lookupUrl: (p) => `https://a.example/${path.basename(p)}`,
  });
  const b = await run(chain, css, {
    server: "b",
    lookupUrl: (p) => `https://b.example/${path.basename(p)}`,
  });
  assert(a.name !== b.name, `${a.name} === ${b.name}`);
});

Deno.test("unique_filename.Mtime and MD5 name a stylesheet after the URLs it embeds", async () => {
  const css = path.join(SHOP, "css", "print.css");
  const stat = fs.statSync(css);
  const mtime = String(Math.floor(stat.mtimeMs / 1000));
  const sourceMd5 = createHash("md5").update(fs.readFileSync(css)).digest("hex");
  for (const unique of ["unique_filename.Mtime", "unique_filename.MD5"]) {
    const chain = [ref("link_updater.CSSURLUpdater"), ref(unique)];
    const at = (version: string) =>
      run(chain, css, {
        server: "a",
        lookupUrl: (p) => `https://a.example/${version}/${path.basename(p)}`,
      });
    const v1 = await at("v1");
    const v1again = await at("v1");
    const v2 = await at("v2");
    assertEquals(v1.name, v1again.name, unique);
    assert(v1.name !== v2.name, `${unique}: ${v1.name} stays when a referenced URL changes`);
    const hash = createHash("md5").update(v1.bytes).digest("hex");
    assertEquals(
      v1.name,
      unique.endsWith("Mtime") ? `print_${mtime}_${hash.slice(0, 8)}.css` : `print_${hash}.css`,
    );
    assert(hash !== sourceMd5, "the stylesheet's URLs were rewritten");
  }
  // Without embedded URLs the names stay the original's.
  const js = path.join(SHOP, "js", "app.js");
  const jsMtime = String(Math.floor(fs.statSync(js).mtimeMs / 1000));
  assertEquals((await run([ref("unique_filename.Mtime")], js)).name, `app_${jsMtime}.js`);
});
