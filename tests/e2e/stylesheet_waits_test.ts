/**
 * A stylesheet whose referenced files are still being processed waits for
 * them, however long that takes and however many chains run at once: it is
 * published once, with every URL rewritten, even when their processing takes
 * longer than `maxWait` (the deadline is for files that are not on their way).
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals } from "../_assert.ts";
import { cli, localConfig, workspace, write } from "../_harness.ts";

Deno.test("a stylesheet waits for referenced files being processed, past maxWait, and is published once", async () => {
  const ws = workspace("fc-cssw-");
  try {
    const images = ["a", "b", "c", "d"];
    for (const n of images) write(path.join(ws.src, "img", `${n}.png`), `png ${n}`);
    write(
      path.join(ws.src, "css", "site.css"),
      images.map((n) => `.${n} { background: url(../img/${n}.png); }`).join("\n") + "\n",
    );
    // Each image takes 2 s to process, longer than the stylesheet's maxWait of 1 s; eight
    // chains run at once, so the stylesheet's chain runs while the images are processed.
    localConfig(ws, {
      ruleBody: `<filter><extensions>css:png</extensions></filter>
      <processorChain>
        <processor name="command" command="sleep 2; cat {in}" shell="true" extensions="png" />
        <processor name="link_updater.CSSURLUpdater" maxWait="1" />
      </processorChain>`,
      settings: { maxSimultaneousProcessorChains: "8" },
    });
    const r = await cli(["sync", "--once", "--config", ws.config], { FILECONVEYOR_LOG: "info" });
    const log = r.stdout + r.stderr;
    assertEquals(r.code, 0, log);
    const published = log.split("\n").filter((l) => /(uploaded|updated) css\/site\.css/.test(l));
    assertEquals(published.length, 1, `published more than once:\n${log}`);
    assert(!/still not synced/.test(log), log);
    const css = fs.readFileSync(path.join(ws.dst, "css", "site.css"), "utf8");
    for (const n of images) assert(css.includes(`url(http://cdn.test/img/${n}.png)`), css);
  } finally {
    ws.cleanup();
  }
});

Deno.test("a stylesheet importing a stylesheet that waits for its images waits too, and each is published once", async () => {
  const ws = workspace("fc-cssw2-");
  try {
    const images = ["a", "b"];
    for (const n of images) write(path.join(ws.src, "img", `${n}.png`), `png ${n}`);
    write(
      path.join(ws.src, "css", "parts.css"),
      images.map((n) => `.${n} { background: url(../img/${n}.png); }`).join("\n") + "\n",
    );
    write(path.join(ws.src, "css", "site.css"), `@import "parts.css";\nbody { margin: 0; }\n`);
    // The images take 3 s; site.css reaches the updater 1 s late, when parts.css already waits
    // for them: site.css must wait for parts.css (on its way) past its maxWait of 1 s.
    localConfig(ws, {
      ruleBody: `<filter><extensions>css:png</extensions></filter>
      <processorChain>
        <processor name="command" command="sleep 3; cat {in}" shell="true" extensions="png" />
        <processor name="command" command="case {name} in site.css) sleep 1;; esac; cat {in}" shell="true" extensions="css" />
        <processor name="link_updater.CSSURLUpdater" maxWait="1" />
      </processorChain>`,
      settings: { maxSimultaneousProcessorChains: "8" },
    });
    const r = await cli(["sync", "--once", "--config", ws.config], { FILECONVEYOR_LOG: "info" });
    const log = r.stdout + r.stderr;
    assertEquals(r.code, 0, log);
    for (const css of ["site", "parts"]) {
      const published = log.split("\n").filter((l) =>
        new RegExp(`(uploaded|updated) css/${css}\\.css`).test(l)
      );
      assertEquals(published.length, 1, `${css}.css published more than once:\n${log}`);
    }
    assert(!/still not synced/.test(log), log);
    const site = fs.readFileSync(path.join(ws.dst, "css", "site.css"), "utf8");
    assert(site.includes(`@import "http://cdn.test/css/parts.css"`), site);
    const parts = fs.readFileSync(path.join(ws.dst, "css", "parts.css"), "utf8");
    for (const n of images) assert(parts.includes(`url(http://cdn.test/img/${n}.png)`), parts);
  } finally {
    ws.cleanup();
  }
});
