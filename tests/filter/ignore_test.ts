import { IgnoreMatcher } from "../../src/filter/ignore.ts";
import { tempName } from "../../src/util/temp_name.ts";
import { assert, assertEquals } from "../_assert.ts";

const tmp = tempName("a.css");

Deno.test("IgnoreMatcher ignores temp names and everything below an ignored directory at any depth", () => {
  const m = new IgnoreMatcher({ dirs: [".git", "node_modules"] });
  const table: [string, boolean][] = [
    ["a.css", false],
    ["css/a.css", false],
    [".git/config", true],
    ["deep/er/.git/objects/x", true],
    ["node_modules/x/y.js", true],
    // A file that has an ignored directory's name is kept.
    [".git", false],
    ["css/node_modules", false],
    // Names that only contain an ignored name are kept.
    ["my.git/a", false],
    [tmp, true],
    [`css/${tmp}`, true],
    // A temp name as a directory does not hide its contents (only rules say so).
    [`${tmp}/a`, false],
  ];
  for (const [rel, ignored] of table) assertEquals(m.isIgnoredRel(rel), ignored, rel);
});

Deno.test("IgnoreMatcher.isIgnoredEntry() skips temp names and ignored directories, not files named like them", () => {
  const m = new IgnoreMatcher({ dirs: ["cache"] });
  assert(m.isIgnoredEntry("cache", true));
  assert(!m.isIgnoredEntry("cache", false));
  assert(m.isIgnoredEntry(tmp, false));
  assert(m.isIgnoredEntry(tmp, true));
  assert(!m.isIgnoredEntry("a.css", false));
  assert(m.isIgnoredDirName("cache"));
  assert(!m.isIgnoredDirName("css"));
});

Deno.test("IgnoreMatcher.isExcluded() hides an excluded path and what is below it, not its siblings", () => {
  const m = new IgnoreMatcher({ exclude: ["/site/data"] });
  assert(m.isExcluded("/site/data"));
  assert(m.isExcluded("/site/data/fileconveyor.db"));
  assert(!m.isExcluded("/site/data2/a"));
  assert(!m.isExcluded("/site/dat"));
  assert(!m.isExcluded("/site/a"));
});

Deno.test("IgnoreMatcher.mayExcludeIn() is true exactly where an entry of the directory can be excluded", () => {
  const m = new IgnoreMatcher({ exclude: ["/site/data", "/site/a/b/work"] });
  // An excluded path below: some entry (or an entry's subtree) may be excluded.
  assert(m.mayExcludeIn("/site"));
  assert(m.mayExcludeIn("/site/"));
  assert(m.mayExcludeIn("/site/a"));
  assert(m.mayExcludeIn("/site/a/b"));
  // The directory itself is excluded: every entry is.
  assert(m.mayExcludeIn("/site/data"));
  assert(m.mayExcludeIn("/site/data/x"));
  // Nothing excluded at or below: no entry needs asking.
  assert(!m.mayExcludeIn("/site/data2"));
  assert(!m.mayExcludeIn("/site/a/c"));
  assert(!m.mayExcludeIn("/other"));
  assert(!new IgnoreMatcher().mayExcludeIn("/site"));
  // Whenever it is false, no entry of the directory is excluded.
  for (const dir of ["/site/data2", "/site/a/c", "/other"]) {
    for (const name of ["data", "b", "work", "x"]) assert(!m.isExcluded(`${dir}/${name}`));
  }
});

Deno.test("IgnoreMatcher.isIgnoredPath() combines exclusion and the relative rules", () => {
  const m = new IgnoreMatcher({ dirs: [".svn"], exclude: ["/site/work"] });
  assert(m.isIgnoredPath("/site", "/site/work/x.css"));
  assert(m.isIgnoredPath("/site", "/site/a/.svn/entries"));
  assert(m.isIgnoredPath("/site", `/site/css/${tmp}`));
  assert(!m.isIgnoredPath("/site", "/site/css/a.css"));
  // Outside the root only the name is judged.
  assert(m.isIgnoredPath("/site", `/elsewhere/${tmp}`));
  assert(!m.isIgnoredPath("/site", "/elsewhere/.svn/x"));
});

Deno.test("IgnoreMatcher without options ignores only temp names", () => {
  const m = new IgnoreMatcher();
  assert(!m.isIgnoredRel(".git/config"));
  assert(!m.hasIgnoredDir("a/b/c"));
  assert(m.isIgnoredRel(tmp));
  assert(!m.isExcluded("/"));
});
