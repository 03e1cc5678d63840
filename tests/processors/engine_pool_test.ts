/**
 * The engine pool: idle workers are terminated and restarted on demand,
 * the memory budget runs oversized jobs alone, a crashing or hanging worker
 * fails only its own job (after one retry) with a retryable error, and pure
 * results come from the content cache instead of the engine.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ClassifiedError } from "../../src/errors.ts";
import { runChain, setupProcessors } from "../../src/processors/chain.ts";
import { configureEngines, EnginePool, enginePool } from "../../src/processors/_engine_pool.ts";
import { ResultCache } from "../../src/processors/_result_cache.ts";
import { assert, assertEquals, assertIncludes, assertRejects } from "../_assert.ts";
import { cdnLookup, ref, SHOP, SHOP_SOURCE, tempDir } from "./_helpers.ts";

const FAULTY = new URL("./_faulty_engine_worker.ts", import.meta.url);

/** Waits (polling) until `cond` holds; fails after `ms`. Not a timing assertion: a bound on a wait. */
async function until(cond: () => boolean, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`Timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function minify(pool: EnginePool, code: string) {
  return pool.run<{ code: string }>({ kind: "minify", code, loader: "js", options: {} });
}

Deno.test("EnginePool terminates a worker after its idle period and starts a fresh one for the next job", async () => {
  const pool = new EnginePool({ idleMs: 150 });
  try {
    assertEquals((await minify(pool, "var answer = 40 + 2;")).code, "var answer=42;\n");
    assertEquals(pool.stats.alive, 1);
    await until(() => pool.stats.alive === 0, "the idle worker is terminated");
    assertEquals(pool.stats.idleStops, 1);
    const again = await minify(pool, "function f ( a ) { return a * 2 }");
    assertEquals(again.code, "function f(n){return n*2}\n");
    assertEquals(pool.stats.started, 2);
  } finally {
    pool.close();
  }
});

Deno.test("setupProcessors applies engineIdleTimeout: the shared worker ends when idle, the next file restarts it", async () => {
  const t = tempDir();
  const minifyJs = ref("minify.JS");
  try {
    assertEquals(
      await setupProcessors([minifyJs], {
        settings: { engineWorkers: 2, engineIdleTimeout: 0.2, engineMemory: 256 },
      }),
      [],
    );
    const file = path.join(t.dir, "a.js");
    fs.writeFileSync(file, "var total = 3 * 3; // nine\n");
    const chain = () =>
      runChain({
        originalPath: file,
        relDir: "",
        name: "a.js",
        source: { name: "t", scanPath: t.dir },
        processors: [minifyJs],
        workDir: fs.mkdtempSync(path.join(t.dir, "work-")),
        signal: new AbortController().signal,
        lookupUrl: () => undefined,
      });
    assertEquals(fs.readFileSync((await chain()).path, "utf8"), "var total=9;\n");
    const started = enginePool().stats.started;
    await until(() => enginePool().stats.alive === 0, "the shared worker ends");
    assertEquals(fs.readFileSync((await chain()).path, "utf8"), "var total=9;\n");
    assertEquals(enginePool().stats.started, started + 1);
  } finally {
    await setupProcessors([], {
      settings: { engineWorkers: 2, engineIdleTimeout: 30, engineMemory: 256 },
    });
    t.cleanup();
  }
});

Deno.test("EnginePool runs two minifiers at once within the default budget (their engine code is shared)", async () => {
  const pool = new EnginePool({ maxWorkers: 2, idleMs: 60_000 });
  try {
    const cores = typeof os.availableParallelism === "function"
      ? os.availableParallelism()
      : os.cpus().length;
    let most = 0;
    const watch = setInterval(() => most = Math.max(most, pool.stats.alive), 1);
    // Enough small jobs that both workers get some while the first still starts.
    const inputs = Array.from({ length: 40 }, (_, i) => `var v${i} = ${i} + 1;`);
    const results = await Promise.all(inputs.map((c) => minify(pool, c)));
    clearInterval(watch);
    assertEquals(results.map((r) => r.code), inputs.map((_, i) => `var v${i}=${i + 1};\n`));
    assertEquals(most, Math.min(2, cores), "workers alive at once");
  } finally {
    pool.close();
  }
});

Deno.test("EnginePool runs a job larger than the memory budget alone and gives its worker back", async () => {
  const pool = new EnginePool({ memoryBudget: 1, maxWorkers: 2, idleMs: 60_000 });
  try {
    let most = 0;
    const watch = setInterval(() => most = Math.max(most, pool.stats.alive), 1);
    const results = await Promise.all(
      ["var a = 1 + 1;", "var b = 2 + 2;", "var c = 3 + 3;"].map((c) => minify(pool, c)),
    );
    clearInterval(watch);
    assertEquals(results.map((r) => r.code), ["var a=2;\n", "var b=4;\n", "var c=6;\n"]);
    assertEquals(most, 1, "more than one worker alive over the budget");
    assertEquals(pool.stats.alive, 0, "a worker over the budget must not wait for its idle period");
  } finally {
    pool.close();
  }
});

Deno.test("EnginePool fails only the job whose worker crashes, after one retry, with a retryable error", async () => {
  const pool = new EnginePool({ workerUrl: FAULTY, maxWorkers: 2 });
  try {
    const [bad, good] = await Promise.allSettled([
      minify(pool, "var x = 'crash me';"),
      minify(pool, "var y = 5 * 5;"),
    ]);
    assertEquals(good.status, "fulfilled");
    assertEquals((good as PromiseFulfilledResult<{ code: string }>).value.code, "var y=25;\n");
    assertEquals(bad.status, "rejected");
    const e = (bad as PromiseRejectedResult).reason;
    assert(e instanceof ClassifiedError, `expected a ClassifiedError, got ${e}`);
    assertEquals(e.kind, "retry");
    assertIncludes(e.message, "The esbuild engine worker failed 2 times on this file");
    assertIncludes(e.message, "simulated engine crash");
    assertEquals(pool.stats.crashes, 2);
    // The pool still works afterwards.
    assertEquals((await minify(pool, "var z = 1 - 1;")).code, "var z=0;\n");
  } finally {
    pool.close();
  }
});

Deno.test("EnginePool replaces a worker whose engine broke, and reports a repeated break as the engine's error", async () => {
  const pool = new EnginePool({ workerUrl: FAULTY });
  try {
    const e = await assertRejects(() => minify(pool, "var x = 'break me';"));
    assert(!(e instanceof ClassifiedError), "a repeated engine error is the input's, not a crash");
    assertEquals(e.message, "simulated trap");
    assertEquals(pool.stats.crashes, 2);
    assertEquals((await minify(pool, "var ok = 2 + 2;")).code, "var ok=4;\n");
    assertEquals(pool.stats.started, 3);
  } finally {
    pool.close();
  }
});

Deno.test("EnginePool terminates a worker that does not answer in time and fails its job", async () => {
  const pool = new EnginePool({ workerUrl: FAULTY, jobTimeoutMs: 300 });
  try {
    const e = await assertRejects(() => minify(pool, "var x = 'hang me';"), ClassifiedError);
    assertIncludes(e.message, "no answer within");
    assertEquals(pool.stats.alive, 0);
  } finally {
    pool.close();
  }
});

Deno.test("EnginePool compiles an engine once: a further worker gets the compiled module, also after a stop with jobs waiting", async () => {
  // Budget for one esbuild worker only, so a job larger than it runs alone and its worker stops.
  const pool = new EnginePool({ maxWorkers: 2, memoryBudget: 200 * 1024 * 1024 });
  try {
    assertEquals((await minify(pool, "var a = 1 + 1;")).code, "var a=2;\n");
    assertEquals(pool.stats.compiles, 1);
    const big = `var big = ${JSON.stringify("x".repeat(3 * 1024 * 1024))}.length;`;
    const [, after] = await Promise.all([
      minify(pool, big),
      minify(pool, "var b = 2 + 2;"),
    ]);
    assertEquals(after.code, "var b=4;\n");
    assert(pool.stats.started >= 2, `a second worker ran (started ${pool.stats.started})`);
    assertEquals(pool.stats.compiles, 1);
  } finally {
    pool.close();
  }
});

Deno.test("EnginePool making room for another engine keeps the worker it chose and loads the engine there", async () => {
  // Two esbuild workers fit (160 + 32 MiB + two small jobs); adding oxipng to either does not,
  // one esbuild worker with oxipng does.
  const pool = new EnginePool({ maxWorkers: 2, memoryBudget: 215 * 1024 * 1024 });
  try {
    await minify(pool, "var a = 1 + 1;");
    await Promise.all([minify(pool, "var b = 2 + 2;"), minify(pool, "var c = 3 + 3;")]);
    assertEquals(pool.stats.started, 2);
    const png = await pool.run<Uint8Array>({
      kind: "raw",
      rgba: new Uint8Array([255, 0, 0, 255]),
      width: 1,
      height: 1,
      level: 1,
    });
    assert(png.length > 0);
    // One esbuild worker made room; the other took oxipng (no third worker).
    assertEquals(pool.stats.started, 2);
    assertEquals(pool.stats.alive, 1);
    assertEquals((await minify(pool, "var d = 4 + 4;")).code, "var d=8;\n");
  } finally {
    pool.close();
  }
});

Deno.test("runChain: a crashing engine worker fails that file with a clear retryable error, the next file works", async () => {
  const t = tempDir();
  configureEngines({ workerUrl: FAULTY });
  try {
    const bad = path.join(t.dir, "bad.js");
    const good = path.join(t.dir, "good.js");
    fs.writeFileSync(bad, "// crash me\nvar first = 1 + 1;\n");
    fs.writeFileSync(good, "// fine\nvar second = 2 + 2;\n");
    const source = { name: "t", scanPath: t.dir };
    const chain = (file: string) =>
      runChain({
        originalPath: file,
        relDir: "",
        name: path.basename(file),
        source,
        processors: [ref("minify.JS")],
        workDir: fs.mkdtempSync(path.join(t.dir, "work-")),
        signal: new AbortController().signal,
        lookupUrl: () => undefined,
      });
    const e = await assertRejects(() => chain(bad), ClassifiedError);
    assertEquals((e as ClassifiedError).kind, "retry");
    assertIncludes(e.message, 'Cannot minify "bad.js"');
    assertIncludes(e.message, "simulated engine crash");
    const out = await chain(good);
    assertEquals(fs.readFileSync(out.path, "utf8"), "var second=4;\n");
  } finally {
    configureEngines({ workerUrl: undefined });
    t.cleanup();
  }
});

Deno.test("runChain with a cacheDir answers a known content from the cache, not the engine", async () => {
  const t = tempDir();
  try {
    const cacheDir = path.join(t.dir, "cache");
    const css = path.join(SHOP, "css", "style.css");
    const chain = () =>
      runChain({
        originalPath: css,
        relDir: "css",
        name: "style.css",
        source: SHOP_SOURCE,
        processors: [ref("minify.CSS")],
        workDir: fs.mkdtempSync(path.join(t.dir, "work-")),
        signal: new AbortController().signal,
        lookupUrl: cdnLookup(),
        cacheDir,
      });
    const first = await chain();
    const jobs = enginePool().stats.jobs;
    const second = await chain();
    assertEquals(enginePool().stats.jobs, jobs, "the engine ran again for a cached content");
    assert(!first.unprocessed && !second.unprocessed);
    assertEquals(fs.readFileSync(second.path, "utf8"), fs.readFileSync(first.path, "utf8"));
  } finally {
    t.cleanup();
  }
});

Deno.test("ResultCache stays under its size limit, dropping the least recently used entries", async () => {
  const t = tempDir();
  try {
    const cache = new ResultCache(t.dir, { maxBytes: 10_000 });
    const keys: string[] = [];
    for (let i = 0; i < 8; i++) {
      const key = ResultCache.key([`entry ${i}`]);
      keys.push(key);
      await cache.put(key, 1, new Uint8Array(2_000).fill(i));
      // Distinct modification times, so "least recently used" is well defined.
      const when = new Date(Date.now() - (100 - i) * 1000);
      fs.utimesSync(path.join(t.dir, key.slice(0, 2), key), when, when);
    }
    let total = 0;
    for (const d of fs.readdirSync(t.dir)) {
      for (const f of fs.readdirSync(path.join(t.dir, d))) {
        total += fs.statSync(path.join(t.dir, d, f)).size;
      }
    }
    assert(total <= 10_000, `cache holds ${total} bytes`);
    assertEquals(await cache.get(keys[0]!), undefined);
    const last = await cache.get(keys[7]!);
    assertEquals(last?.tag, 1);
    assertEquals(last?.bytes[0], 7);
  } finally {
    t.cleanup();
  }
});
