import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals, assertIncludes, assertRejects } from "../_assert.ts";
import type { ProcessorRef } from "../../src/config/types.ts";
import { ClassifiedError, RequeueError } from "../../src/errors.ts";
import { chainIsPerServer, runChain, setupProcessors } from "../../src/processors/chain.ts";
import type { ProcessorDef } from "../../src/processors/processor.ts";
import { cdnLookup, ref, run, SHOP, tempDir } from "./_helpers.ts";

function fake(def: Partial<ProcessorDef> & Pick<ProcessorDef, "process">): ProcessorRef {
  const full: ProcessorDef = { name: "test.fake", summary: "test", ...def };
  return { name: full.name, def: full, options: {} };
}

const APP = path.join(SHOP, "js", "app.js");
const ICON = path.join(SHOP, "img", "icon.gif");

Deno.test("runChain runs processors in order, skipping files whose current extension they do not handle", async () => {
  const seen: string[] = [];
  const png = fake({
    name: "test.png",
    extensions: [".png"],
    process: (f) => {
      seen.push(`png:${f.name}`);
      return Promise.resolve(undefined);
    },
  });
  const gif = fake({
    name: "test.gif",
    extensions: [".gif"],
    process: (f) => {
      seen.push(`gif:${f.name}`);
      return Promise.resolve(undefined);
    },
  });
  const out = await run([gif, png, ref("image_optimizer.Max"), gif, png], ICON);
  assertEquals(out.name, "icon.png");
  assertEquals(seen, ["gif:icon.gif", "png:icon.png"]);
});

Deno.test("runChain collects references and extras, and renames extras with the main file", async () => {
  const t = tempDir();
  try {
    const a = fake({ process: () => Promise.resolve({ references: ["/a", "/b"] }) });
    const b = fake({
      process: async (f, ctx) => {
        const p = path.join(ctx.workDir, f.name + ".x");
        await fs.promises.writeFile(p, "x");
        return { references: ["/b", "/c"], extras: [{ name: f.name + ".x", path: p }] };
      },
    });
    const c = fake({ process: () => Promise.resolve({ name: "renamed.js" }) });
    const out = await run([a, b, c], APP, { workDir: t.dir });
    assertEquals(out.references, ["/a", "/b", "/c"]);
    assertEquals(out.extras.map((x) => x.name), ["renamed.js.x"]);
    assertEquals(out.name, "renamed.js");
    assert(out.unprocessed, "content untouched");
    // Each processor got its own work sub-directory.
    assert(fs.existsSync(path.join(t.dir, "1", "app.js.x")));
  } finally {
    t.cleanup();
  }
});

Deno.test("runChain passes classified and requeue errors through and names the processor otherwise", async () => {
  await assertRejects(
    () => run(fake({ process: () => Promise.reject(new RequeueError("later")) }), APP),
    RequeueError,
    "later",
  );
  const fatal = new ClassifiedError("bad file", "fatal");
  assertEquals(
    await assertRejects(() => run(fake({ process: () => Promise.reject(fatal) }), APP)),
    fatal,
  );
  const err = await assertRejects(
    () =>
      run(
        fake({ name: "test.boom", process: () => Promise.reject(new TypeError("x is undefined")) }),
        APP,
      ),
    Error,
    'Processor "test.boom" failed on "js/app.js": x is undefined',
  );
  assert(err.cause instanceof TypeError);
  await assertRejects(
    () => run(fake({ process: () => Promise.resolve({ name: "../evil.js" }) }), APP),
    Error,
    "invalid name",
  );
});

Deno.test("setupProcessors reports each broken processor once", async () => {
  const broken = fake({
    name: "test.broken",
    setup: () => Promise.reject(new Error("no engine")),
    process: () => Promise.resolve(undefined),
  });
  assertEquals(await setupProcessors([broken, broken]), [
    'Processor "test.broken" cannot run: no engine',
  ]);
  await assertRejects(() => run(broken, APP), Error, "no engine");
});

Deno.test("chainIsPerServer only when a per-server processor handles the file", () => {
  const chain = [ref("minify.All"), ref("link_updater.CSSURLUpdater")];
  assert(chainIsPerServer(chain, "a.css"));
  assert(!chainIsPerServer(chain, "a.js"));
  assert(!chainIsPerServer([ref("minify.All")], "a.css"));
});

/** The chain of the original's sample config. */
function sampleChain(): ProcessorRef[] {
  return [
    ref("image_optimizer.KeepFilename"),
    ref("yui_compressor.YUICompressor"),
    ref("google_closure_compiler.GoogleClosureCompiler"),
    ref("link_updater.CSSURLUpdater"),
    ref("unique_filename.Mtime"),
  ];
}

function walk(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]
  ).sort();
}

function digest(files: string[]): Record<string, string> {
  return Object.fromEntries(
    files.map((
      f,
    ) => [f, createHash("md5").update(fs.readFileSync(f)).digest("hex") + fs.statSync(f).mtimeMs]),
  );
}

Deno.test("the original sample chain processes the whole fixture site and never touches the sources", async () => {
  const files = walk(SHOP);
  const before = digest(files);
  const chain = sampleChain();
  assertEquals(await setupProcessors(chain), []);
  const results = new Map<string, Awaited<ReturnType<typeof run>>>();
  for (const file of files) {
    const perServer = chainIsPerServer(chain, path.basename(file));
    results.set(
      file,
      await run(
        chain,
        file,
        perServer ? { server: "cdn", lookupUrl: cdnLookup("https://cdn.example.com/") } : {},
      ),
    );
  }
  assertEquals(digest(files), before, "sources unchanged");
  const mtime = (f: string) => Math.floor(fs.statSync(f).mtimeMs / 1000);
  for (const [file, out] of results) {
    const base = path.basename(file);
    const dot = base.lastIndexOf(".");
    // Mtime renames everything (stylesheets that embed URLs get a content hash too);
    // KeepFilename never changes the extension.
    const hash = out.references.length > 0
      ? "_" + createHash("md5").update(out.bytes).digest("hex").slice(0, 8)
      : "";
    assertEquals(out.name, `${base.slice(0, dot)}_${mtime(file)}${hash}${base.slice(dot)}`, base);
    assert(out.bytes.length <= fs.statSync(file).size || file.endsWith(".css"), `${base} grew`);
  }
  const style = new TextDecoder().decode(results.get(path.join(SHOP, "css", "style.css"))!.bytes);
  assertIncludes(style, "url(https://cdn.example.com/shop/img/bg.png)");
  assertIncludes(style, '@import"https://cdn.example.com/shop/css/print.css"print;');
  assert(!style.includes("\n  "), "minified");
  const app = new TextDecoder().decode(results.get(APP)!.bytes);
  const run1 = new Function(app + "\n;return selfTest();")();
  const run0 = new Function(fs.readFileSync(APP, "utf8") + "\n;return selfTest();")();
  assertEquals(run1, run0);
  assert(
    results.get(path.join(SHOP, "img", "photo.jpg"))!.bytes.length <
      fs.statSync(path.join(SHOP, "img", "photo.jpg")).size,
  );
});

Deno.test("runChain without processors that apply returns the source itself", async () => {
  const ac = new AbortController();
  const out = await runChain({
    originalPath: APP,
    relDir: "js",
    name: "app.js",
    source: { name: "shop", scanPath: SHOP },
    processors: [ref("image_optimizer.Max")],
    workDir: tempDir().dir,
    signal: ac.signal,
    lookupUrl: () => undefined,
  });
  assertEquals(out, { path: APP, name: "app.js", unprocessed: true, extras: [], references: [] });
});

Deno.test("runChain makes the work directory only when a processor writes, private to the user", async () => {
  const { dir, cleanup } = tempDir();
  try {
    // Renaming only: nothing is written, so no directory is made.
    const renamed = path.join(dir, "rename-only");
    const r = await run(ref("unique_filename.Mtime"), APP, { workDir: renamed });
    assert(r.name.startsWith("app_") && r.unprocessed);
    assertEquals(fs.existsSync(renamed), false);
    // A minifier writes its output: its directory is made then, with mode 0700.
    const minified = path.join(dir, "minify");
    const m = await run([ref("minify.JS"), ref("unique_filename.Mtime")], APP, {
      workDir: minified,
    });
    assert(!m.unprocessed && m.path.startsWith(minified + path.sep));
    assertEquals(fs.statSync(path.dirname(m.path)).mode & 0o777, 0o700);
    // A processor without `createsWorkDir` finds its directory made for it.
    const made = path.join(dir, "made");
    let existed = false;
    await run(
      fake({
        process: (_f, ctx) => {
          existed = fs.statSync(ctx.workDir).isDirectory();
          return Promise.resolve(undefined);
        },
      }),
      APP,
      { workDir: made },
    );
    assert(existed);
  } finally {
    cleanup();
  }
});
