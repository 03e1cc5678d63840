import { parseConfig, pythonRegex } from "../../src/config/load.ts";
import { matchesFilter, matchingRules } from "../../src/filter/filter.ts";
import "../../src/transports/mod.ts";
import type { Filter } from "../../src/config/types.ts";
import { assert, assertEquals } from "../_assert.ts";

const ROOT = "/htdocs/drupal";
function c(rel: string, size?: number) {
  return { path: `${ROOT}/${rel}`, rel, ...(size !== undefined ? { size } : {}) };
}

Deno.test("matchesFilter() matches everything without a filter", () => {
  assert(matchesFilter(undefined, c("anything/at/all.bin")));
});

Deno.test("matchesFilter() paths match whole runs of directory names anywhere in the path", () => {
  const f: Filter = { paths: ["modules", "misc/sub", "sites/all/themes"] };
  assert(matchesFilter(f, c("modules/a.css")));
  assert(matchesFilter(f, c("modules/x/y/a.css")));
  assert(matchesFilter(f, c("misc/sub/a.css")));
  assert(!matchesFilter(f, c("misc/a.css")));
  assert(!matchesFilter(f, c("modules2/a.css")), "a prefix of a name is not a match");
  assert(!matchesFilter(f, c("mymodules/a.css")), "a suffix of a name is not a match");
  assert(!matchesFilter(f, c("a.css")));
  assert(!matchesFilter(f, c("x/modules.css")), "the file name is not a directory");
  // Deeper in the tree, as the original matched in a Drupal multisite.
  assert(matchesFilter(f, c("sites/example.com/modules/a.css")));
  assert(matchesFilter(f, c("x/misc/sub/y/a.css")));
  assert(!matchesFilter(f, c("x/misc/subway/a.css")));
  assert(matchesFilter({ paths: ["themes"] }, c("sites/x/themes/garland/style.css")));
  assert(!matchesFilter({ paths: ["themes"] }, c("sites/x/mythemes/style.css")));
});

Deno.test("matchesFilter() extensions are exact and case-insensitive", () => {
  const f: Filter = { extensions: ["css", "js"] };
  assert(matchesFilter(f, c("a.css")));
  assert(matchesFilter(f, c("A.CSS")));
  assert(!matchesFilter(f, c("a.scss")));
  assert(!matchesFilter(f, c("css")));
  assert(!matchesFilter(f, c("a.css.map")));
  assert(!matchesFilter(f, c(".css")), "a dot file has no extension");
});

Deno.test("matchesFilter() ignoredDirs apply at any depth and not to the file name", () => {
  const f: Filter = { ignoredDirs: ["CVS", ".svn"] };
  assert(!matchesFilter(f, c("CVS/a.txt")));
  assert(!matchesFilter(f, c("x/.svn/pristine/ab/a.txt")), "deep inside an ignored dir");
  assert(matchesFilter(f, c("CVS.txt")), "the original rejected this (stem = ignored dir)");
  assert(matchesFilter(f, c("x/CVSX/a.txt")));
});

Deno.test("matchesFilter() pattern is anchored at the start of the absolute path", () => {
  const re = pythonRegex(".*\\.(?P<ext>mov|avi)$");
  assert(!(re instanceof Error));
  const f: Filter = { pattern: re as RegExp };
  assert(matchesFilter(f, c("videos/a.mov")));
  assert(!matchesFilter(f, c("videos/a.mov.txt")));
  const anchored = pythonRegex("videos/");
  assert(
    !matchesFilter({ pattern: anchored as RegExp }, c("videos/a.mov")),
    "re.match anchors at the start",
  );
  assert(pythonRegex("([") instanceof Error);
});

Deno.test("matchesFilter() size conditions are strict and skip deletions", () => {
  const min: Filter = { size: { conditionType: "minimum", bytes: 100 } };
  const max: Filter = { size: { conditionType: "maximum", bytes: 100 } };
  assert(!matchesFilter(min, c("a", 100)));
  assert(matchesFilter(min, c("a", 101)));
  assert(!matchesFilter(max, c("a", 100)));
  assert(matchesFilter(max, c("a", 99)));
  assert(matchesFilter(min, c("a")), "deletions always pass the size test");
});

Deno.test("matchesFilter() requires every condition (AND), any entry per condition (OR)", () => {
  const f: Filter = {
    paths: ["misc"],
    extensions: ["css", "js"],
    size: { conditionType: "maximum", bytes: 10 },
  };
  assert(matchesFilter(f, c("misc/a.js", 5)));
  assert(!matchesFilter(f, c("misc/a.js", 50)));
  assert(!matchesFilter(f, c("misc/a.png", 5)));
  assert(!matchesFilter(f, c("modules/a.js", 5)));
});

Deno.test("rules for /a/site never match files of /a/site2", () => {
  const root = Deno.makeTempDirSync();
  Deno.mkdirSync(`${root}/site`);
  Deno.mkdirSync(`${root}/site2`);
  try {
    const cfg = parseConfig(
      `<config><sources><source name="s" scanPath="${root}/site"/><source name="t" scanPath="${root}/site2"/></sources>
       <servers><server name="l" transporter="symlink_or_copy"><location>${root}/o</location><url>http://x/</url></server></servers>
       <rules><rule for="s"><destinations><destination server="l"/></destinations></rule></rules></config>`,
      `${root}/c.xml`,
    );
    assertEquals(cfg.sources.length, 2);
    const [site, site2] = cfg.sources;
    assertEquals(
      matchingRules(cfg.rules, site!, { path: `${root}/site/a.css`, rel: "a.css" }).length,
      1,
    );
    assertEquals(
      matchingRules(cfg.rules, site2!, { path: `${root}/site2/a.css`, rel: "a.css" }).length,
      0,
    );
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
