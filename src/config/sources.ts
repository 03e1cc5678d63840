/**
 * The `<sources>` section: names, scan paths (resolved, real, directories),
 * document roots, nesting, and the ignored directories.
 *
 * @module
 */
import * as path from "node:path";
import * as fs from "node:fs";
import type { Source } from "./types.ts";
import type { XmlElement } from "./xml.ts";
import { type Checker, FORBIDDEN_DIR_CHARS, NAME_RE } from "./_checker.ts";

/** Checks `<sources>`; returns the sources and the ignored directories. */
export function checkSources(
  chk: Checker,
  el: XmlElement,
): { sources: Source[]; ignoredDirs: string[] } {
  chk.attrs(el, ["ignoredDirs"]);
  chk.children(el, ["source"]);
  chk.noText(el);
  const ignoredDirs = chk.dirList(
    el,
    el.attrs.get("ignoredDirs") ?? "",
    "ignored directory",
    FORBIDDEN_DIR_CHARS,
    "ignoredDirs",
  );
  const sources: Source[] = [];
  const names = new Set<string>();
  const list = el.children.filter((c) => c.name === "source");
  if (list.length === 0) chk.problem(el, "At least one <source> is required");
  for (const s of list) {
    chk.attrs(s, ["name", "scanPath", "documentRoot", "basePath", "watch"]);
    chk.children(s, []);
    const name = s.attrs.get("name");
    if (name === undefined || name === "") chk.problem(s, 'Missing attribute "name"', "name");
    else if (!NAME_RE.test(name)) {
      chk.problem(s, `Invalid source name "${name}": use letters, digits, "-" and "_"`, "name");
    } else if (names.has(name)) chk.problem(s, `Duplicate source name "${name}"`, "name");
    else names.add(name);
    const scanPath = s.attrs.get("scanPath");
    let real = "";
    if (!scanPath) chk.problem(s, 'Missing attribute "scanPath"', "scanPath");
    else {
      const abs = path.resolve(chk.dir, scanPath);
      try {
        real = fs.realpathSync(abs);
        if (!fs.statSync(real).isDirectory()) {
          chk.problem(s, `scanPath "${scanPath}" is not a directory`, "scanPath");
        }
      } catch {
        chk.problem(s, `scanPath "${scanPath}" does not exist`, "scanPath");
      }
    }
    const src: Source = {
      name: name ?? "",
      scanPath: real,
      configuredPath: scanPath ?? "",
      watch: "auto",
      line: s.line,
    };
    const docRoot = s.attrs.get("documentRoot");
    if (docRoot) {
      const abs = path.resolve(chk.dir, docRoot);
      try {
        src.documentRoot = fs.realpathSync(abs);
      } catch {
        chk.problem(s, `documentRoot "${docRoot}" does not exist`, "documentRoot");
      }
    }
    const basePath = s.attrs.get("basePath");
    if (basePath !== undefined) {
      if (!basePath.startsWith("/") || !basePath.endsWith("/")) {
        chk.problem(s, `basePath "${basePath}" must start and end with "/"`, "basePath");
      } else src.basePath = basePath;
    }
    const watch = s.attrs.get("watch");
    if (watch !== undefined) {
      if (watch === "auto" || watch === "poll") src.watch = watch;
      else chk.problem(s, `watch must be "auto" or "poll", not "${watch}"`, "watch");
    }
    sources.push(src);
  }
  // Nested sources would sync files twice and race each other.
  for (const a of sources) {
    for (const b of sources) {
      if (a !== b && a.scanPath && b.scanPath && a.scanPath.startsWith(b.scanPath + path.sep)) {
        chk.issues.push({
          line: a.line,
          path: `config/sources/source[${JSON.stringify(a.name)}]@scanPath`,
          message: `scanPath of source "${a.name}" lies inside source "${b.name}"`,
        });
      }
    }
  }
  return { sources, ignoredDirs };
}
