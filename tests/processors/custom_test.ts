import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { chainIsPerServer, setupProcessors } from "../../src/processors/chain.ts";
import { parseConfig } from "../../src/config/load.ts";
import "../../src/transports/symlink_or_copy.ts";
import { ref, run, SHOP, tempDir } from "./_helpers.ts";

const MODULE = `
import * as fs from "node:fs/promises";
import * as path from "node:path";
export default {
  name: "banner",
  extensions: [".css", ".js"],
  differentPerServer: true,
  async setup(ctx) { globalThis.__bannerSetup = (globalThis.__bannerSetup ?? 0) + 1; },
  async process(file, ctx) {
    const text = await fs.readFile(file.path, "utf8");
    const out = path.join(ctx.workDir, file.name);
    await fs.writeFile(out, "/* " + ctx.options.args + " for " + ctx.server + " */\\n" + text);
    return { path: out, references: ["/x/y"] };
  },
};
`;

Deno.test("custom loads a module processor with its extensions and per-server flag", async () => {
  const t = tempDir();
  try {
    const mod = path.join(t.dir, "banner.ts");
    fs.writeFileSync(mod, MODULE);
    const r = ref("custom", { module: mod, args: "(c) Example" });
    assertEquals(await setupProcessors([r]), []);
    assert(chainIsPerServer([r], "a.css"), "differentPerServer from the module");
    assert(!chainIsPerServer([r], "a.png"), "extensions from the module");
    const out = await run(r, path.join(SHOP, "css", "print.css"), { server: "cdn" });
    assert(
      new TextDecoder().decode(out.bytes).startsWith(
        "/* (c) Example for cdn */\n/* Print styles */",
      ),
    );
    assertEquals(out.references, ["/x/y"]);
    assert((await run(r, path.join(SHOP, "img", "logo.png"), { server: "cdn" })).unprocessed);
    // The extensions option overrides the module's.
    const png = ref("custom", { module: mod, args: "x", extensions: "png" });
    await setupProcessors([png]);
    assert(chainIsPerServer([png], "a.png") && !chainIsPerServer([png], "a.css"));
  } finally {
    t.cleanup();
  }
});

Deno.test("custom accepts a bare function and reports unusable modules", async () => {
  const t = tempDir();
  try {
    const fn = path.join(t.dir, "upper.js");
    fs.writeFileSync(
      fn,
      `import * as fs from "node:fs/promises";
       export default async (file, ctx) => {
         const out = ctx.workDir + "/" + file.name;
         await fs.writeFile(out, (await fs.readFile(file.path, "utf8")).toUpperCase());
         return { path: out };
       };`,
    );
    const out = await run(ref("custom", { module: fn }), path.join(SHOP, "css", "print.css"));
    assertIncludes(new TextDecoder().decode(out.bytes), "PRINT STYLES");
    const bad = path.join(t.dir, "bad.js");
    fs.writeFileSync(bad, "export default { nothing: true };");
    const problems = await setupProcessors([ref("custom", { module: bad })]);
    assertIncludes(
      problems[0] ?? "",
      "must export default an object with a process(file, ctx) function",
    );
    const missing = await setupProcessors([ref("custom", { module: path.join(t.dir, "nope.ts") })]);
    assertIncludes(missing[0] ?? "", "Cannot load processor module");
  } finally {
    t.cleanup();
  }
});

Deno.test("processors are configured from XML attributes (module relative to the config)", () => {
  const t = tempDir();
  try {
    fs.mkdirSync(path.join(t.dir, "site"));
    const xml = `<config>
  <sources><source name="s" scanPath="site"/></sources>
  <servers><server name="local" transporter="symlink_or_copy"><location>out</location><url>http://x/</url></server></servers>
  <rules><rule for="s" label="all">
    <processorChain>
      <processor name="image_optimizer.KeepFilename"/>
      <processor name="yui_compressor.YUICompressor" target="es2018"/>
      <processor name="google_closure_compiler.GoogleClosureCompiler"/>
      <processor name="link_updater.CSSURLUpdater"/>
      <processor name="unique_filename.Mtime"/>
      <processor name="compress.Gzip" minSize="100"/>
      <processor name="custom" module="procs/x.ts" args="a b"/>
    </processorChain>
    <destinations><destination server="local"/></destinations>
  </rule></rules>
</config>`;
    const config = parseConfig(xml, path.join(t.dir, "config.xml"));
    const chain = config.rules[0]!.processors;
    assertEquals(chain.map((p) => p.def.name), [
      "image_optimizer.KeepFilename",
      "yui_compressor.YUICompressor",
      "google_closure_compiler.GoogleClosureCompiler",
      "link_updater.CSSURLUpdater",
      "unique_filename.Mtime",
      "compress.Gzip",
      "custom",
    ]);
    assertEquals(chain[1]!.options.target, "es2018");
    assertEquals(chain[5]!.options.minSize, "100");
    assertEquals(chain[6]!.options.module, path.join(t.dir, "procs", "x.ts"));
  } finally {
    t.cleanup();
  }
});
