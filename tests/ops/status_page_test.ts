/**
 * The status page in a real browser (headless Chromium through
 * playwright-core): it renders the daemon's state, loads nothing from
 * elsewhere, and its retry button re-queues a failed file. Chromium is
 * installed with apt-get when missing; the test fails rather than skips.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { chromium } from "playwright-core";
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { localConfig, spawn, workspace, write } from "../_harness.ts";
import { CHROMIUM_ARGS, ensureChromium, get, httpBase, until } from "./_helpers.ts";

/** Width and height from a PNG's IHDR chunk. */
function pngSize(png: Uint8Array): { width: number; height: number } {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  assert(sig.every((b, i) => png[i] === b), "a PNG signature");
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

Deno.test("status page: renders sources, servers, chart and failures; Retry re-queues a failed file", async () => {
  const executablePath = await ensureChromium();
  const ws = workspace("fc-ops-page-");
  for (let i = 0; i < 12; i++) write(path.join(ws.src, "js", `app${i}.js`), `let a${i} = ${i};`);
  write(path.join(ws.src, "css", "bad.css"), "a{}");
  // A directory where the file must go: the upload fails (EISDIR) and is marked as failed.
  write(path.join(ws.dst, "css", "bad.css", "keep"), "x");
  const run = spawn([
    "sync",
    "--config",
    localConfig(ws, { settings: { rescanInterval: "0" } }),
    "--http",
    "127.0.0.1:0",
  ]);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "fc-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    args: CHROMIUM_ARGS,
    headless: true,
    viewport: { width: 1280, height: 900 },
  });
  try {
    const base = await httpBase(run);
    await run.waitFor("marked as failed");
    const page = await context.newPage();
    const foreign: string[] = [];
    const problems: string[] = [];
    page.on("request", (r) => {
      if (!r.url().startsWith(base + "/")) foreign.push(r.url());
    });
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(m.text());
    });
    page.on("pageerror", (e) => problems.push(String(e)));

    await page.goto(base + "/");
    await page.waitForSelector("body[data-loaded='1']", { timeout: 10_000 });
    await page.waitForSelector("#failures tr[data-id]");
    const text = await page.innerText("body");
    for (
      const want of [
        "fileconveyor",
        "healthy",
        "Sources",
        "native",
        ws.src,
        "Servers",
        "symlink_or_copy",
        "Last hour",
        "Failures",
        "failed",
        "bad.css",
        "EISDIR",
        "Recent transfers",
        "js/app11.js",
      ]
    ) {
      assertIncludes(text, want, `page text has "${want}"`);
    }
    assertEquals(await page.locator("#servers tbody tr").count(), 1);
    assert(
      await page.locator("#chart-bytes circle").count() >= 1,
      "the throughput chart has points",
    );
    assert(await page.locator("#chart-lag circle").count() >= 1, "the lag chart has points");

    const shot = await page.screenshot({ fullPage: true });
    const png = new Uint8Array(shot);
    const size = pngSize(png);
    assert(png.length > 20_000, `a non-trivial screenshot (${png.length} bytes)`);
    assert(size.width === 1280 && size.height >= 900, JSON.stringify(size));
    fs.writeFileSync(path.join(os.tmpdir(), "fileconveyor-status-page.png"), png);

    // Fix the cause, then press Retry on the failed file.
    fs.rmSync(path.join(ws.dst, "css", "bad.css"), { recursive: true });
    const row = page.locator("#failures tr", { hasText: "bad.css" });
    await row.locator("button.retry").click();
    await page.waitForSelector("#retry-msg:has-text('Re-queued 1 file(s)')", { timeout: 5000 });
    await run.waitFor(/Re-queued 1 file\(s\) on request \(job \d+\)/);
    await until(
      () => {
        try {
          return fs.statSync(path.join(ws.dst, "css", "bad.css")).isFile() ? "" : "a directory";
        } catch {
          return "missing";
        }
      },
      10_000,
      "bad.css synced after the retry",
    );
    await page.waitForSelector("#failures td.empty", { timeout: 10_000 });
    const status = JSON.parse((await get(base, "/api/status")).text);
    assertEquals(status.queue.failed, 0);
    assertEquals(status.failures, []);

    assertEquals(foreign, [], "everything is served by the daemon");
    assertEquals(problems, [], "no script errors or CSP violations");
    assertEquals(await run.stop(), 0);
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
    await run.kill();
    ws.cleanup();
  }
});

Deno.test("status page: a fleet node shows its name in the header and a Nodes table; on its own, neither", async () => {
  const executablePath = await ensureChromium();
  const ws = workspace("fc-ops-page-fleet-");
  write(path.join(ws.src, "a.txt"), "a");
  const url = `sqlite:${path.join(ws.root, "shared.db")}`;
  const fleet = spawn([
    "sync",
    "--config",
    localConfig(ws, { settings: { store: url, node: "web-7", rescanInterval: "0" } }),
    "--http",
    "127.0.0.1:0",
  ]);
  const alone = workspace("fc-ops-page-alone-");
  const single = spawn(["sync", "--config", localConfig(alone), "--http", "127.0.0.1:0"]);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "fc-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    args: CHROMIUM_ARGS,
    headless: true,
  });
  try {
    const page = await context.newPage();
    const problems: string[] = [];
    page.on("pageerror", (e) => problems.push(String(e)));
    await page.goto((await httpBase(fleet)) + "/");
    await page.waitForSelector("#nodes tr[data-node='web-7']", { timeout: 20_000 });
    assertEquals((await page.innerText("#node")).trim(), "node web-7");
    const row = await page.innerText("#nodes tr[data-node='web-7']");
    assertIncludes(row, "web-7 (this)");
    assertIncludes(row, "alive");

    await page.goto((await httpBase(single)) + "/");
    await page.waitForSelector("body[data-loaded='1']", { timeout: 10_000 });
    assertEquals(await page.locator("#node").isVisible(), false);
    assertEquals(await page.locator("#fleet").isVisible(), false);
    assertEquals(problems, [], "no script errors");
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
    await fleet.kill();
    await single.kill();
    ws.cleanup();
    alone.cleanup();
  }
});
