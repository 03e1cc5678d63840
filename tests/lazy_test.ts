import * as path from "node:path";
import { LAZY_MODULES, loadModule } from "../src/lazy.ts";
import { assert, assertEquals } from "./_assert.ts";

const ROOT = path.resolve(import.meta.dirname!, "..");

interface InfoModule {
  specifier: string;
  dependencies?: { specifier: string; isDynamic?: boolean; code?: { specifier: string } }[];
}

/**
 * What `deno run mod.ts` loads before it runs: the modules reachable from
 * `mod.ts` through code imports (`deno info` also lists type-only imports),
 * and the targets of the literal `import()`s among them, which Deno loads
 * at start too.
 */
async function startGraph(): Promise<{ modules: Set<string>; dynamic: string[] }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "mod.ts"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(out.success, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    roots: string[];
    modules: InfoModule[];
  };
  const byUrl = new Map(info.modules.map((m) => [m.specifier, m]));
  const modules = new Set<string>();
  const dynamic: string[] = [];
  const stack = [...info.roots];
  while (stack.length > 0) {
    const url = stack.pop()!;
    if (modules.has(url)) continue;
    modules.add(url);
    for (const dep of byUrl.get(url)?.dependencies ?? []) {
      const target = dep.code?.specifier;
      if (!target) continue;
      if (dep.isDynamic) dynamic.push(target);
      else stack.push(target);
    }
  }
  return { modules, dynamic: dynamic.filter((d) => !modules.has(d)) };
}

Deno.test("loadModule() loads every module named in LAZY_MODULES", async () => {
  for (const name of LAZY_MODULES) {
    const mod = await loadModule<Record<string, unknown>>(name);
    assert(Object.keys(mod).length > 0, `"${name}" exports nothing`);
  }
});

Deno.test("the start-up graph of mod.ts holds no module loaded on first use", async () => {
  const { modules, dynamic } = await startGraph();
  const src = new URL("../src/", import.meta.url).href;
  assert(modules.has(src + "cli/main.ts"), "the graph misses the CLI");
  // A literal import() in the graph would make Deno load its target at every start.
  assertEquals(dynamic, []);
  assertEquals(LAZY_MODULES.filter((name) => modules.has(src + name)), []);
  // Nor are the transports' and database drivers' npm packages resolved at start.
  const heavy = ["@aws-sdk/", "ssh2@", "basic-ftp@", "pg@", "mysql2@", "omggif@", "mime-types@"];
  assertEquals([...modules].filter((m) => heavy.some((h) => m.includes(h))), []);
});
