/**
 * A stylesheet that references files no rule takes (a font whose extension
 * is missing from the rule) is published at once with those URLs unchanged,
 * and the log says so once, naming the files, instead of the stylesheet
 * waiting and failing with the reason only in `status`.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals } from "../_assert.ts";
import { cli, localConfig, workspace, write } from "../_harness.ts";

Deno.test("references that match no rule: one warning per stylesheet naming them", async () => {
  const ws = workspace("fc-norule-");
  try {
    write(path.join(ws.src, "img", "logo.png"), "png");
    write(path.join(ws.src, "fonts", "fa.ttf"), "ttf");
    write(path.join(ws.src, "fonts", "fa.eot"), "eot");
    write(
      path.join(ws.src, "css", "site.css"),
      `@font-face { src: url(../fonts/fa.eot?#iefix) format("eot"), url('../fonts/fa.ttf'); }
a { background: url(../img/logo.png); }
b { background: url(../img/logo.png); }
`,
    );
    localConfig(ws, {
      ruleBody: `<filter><extensions>css:png</extensions></filter>
      <processorChain><processor name="link_updater.CSSURLUpdater" /></processorChain>`,
      settings: { retryInitialDelay: "1" },
    });
    const r = await cli(["sync", "--once", "--config", ws.config]);
    const log = r.stdout + r.stderr;
    assertEquals(r.code, 0, log);
    const warnings = log.split("\n").filter((l) => /match no rule/.test(l));
    assertEquals(warnings.length, 1, log);
    assert(/WARN/.test(warnings[0]!), warnings[0]);
    assert(warnings[0]!.includes('"fonts/fa.eot", "fonts/fa.ttf"'), warnings[0]);
    assert(warnings[0]!.includes("css/site.css"), warnings[0]);
    const css = fs.readFileSync(path.join(ws.dst, "css", "site.css"), "utf8");
    assert(css.includes("url(http://cdn.test/img/logo.png)"), css);
    assert(css.includes("url(../fonts/fa.eot?#iefix)") && css.includes("'../fonts/fa.ttf'"), css);
  } finally {
    ws.cleanup();
  }
});
