/**
 * The `<rules>` section: each rule's source, filter, processor chain and
 * destinations.
 *
 * @module
 */
import * as path from "node:path";
import { checkOptions, closest } from "../options.ts";
import { getProcessorDef } from "../processors/processor.ts";
import type { Destination, Filter, ProcessorRef, Rule, Server, Source } from "./types.ts";
import type { XmlElement } from "./xml.ts";
import {
  type Checker,
  FORBIDDEN_DIR_CHARS,
  FORBIDDEN_EXT_CHARS,
  FORBIDDEN_PATH_CHARS,
} from "./_checker.ts";

/** Names of the original File Conveyor processors (accepted; some may not be implemented). */
export const ORIGINAL_PROCESSORS = [
  "filename.SpacesToUnderscores",
  "filename.SpacesToDashes",
  "unique_filename.Mtime",
  "unique_filename.MD5",
  "yui_compressor.YUICompressor",
  "google_closure_compiler.GoogleClosureCompiler",
  "image_optimizer.Max",
  "image_optimizer.KeepMetadata",
  "image_optimizer.KeepFilename",
  "image_optimizer.KeepMetadataAndFilename",
  "link_updater.CSSURLUpdater",
];

/** Checks `<rules>` against the already checked sources and servers. */
export function checkRules(
  chk: Checker,
  el: XmlElement,
  sources: Source[],
  servers: Server[],
): Rule[] {
  chk.attrs(el, []);
  chk.children(el, ["rule"]);
  chk.noText(el);
  const rules: Rule[] = [];
  const list = el.children.filter((c) => c.name === "rule");
  if (list.length === 0) chk.problem(el, "At least one <rule> is required");
  list.forEach((r, index) => {
    chk.attrs(r, ["for", "label", "fileDeletionDelayAfterSync"]);
    chk.children(r, ["filter", "processorChain", "destinations"]);
    const source = r.attrs.get("for");
    if (!source) chk.problem(r, 'Missing attribute "for"', "for");
    else if (!sources.some((s) => s.name === source)) {
      const hint = closest(source, sources.map((s) => s.name));
      chk.problem(
        r,
        `Rule is for unknown source "${source}"${hint ? `; did you mean "${hint}"?` : ""}`,
        "for",
      );
    }
    const rule: Rule = {
      index,
      source: source ?? "",
      label: r.attrs.get("label") ?? `rule ${index + 1}`,
      processors: [],
      destinations: [],
      line: r.line,
    };
    const delay = r.attrs.get("fileDeletionDelayAfterSync");
    if (delay !== undefined) {
      if (!/^\s*\d+\s*$/.test(delay)) {
        chk.problem(
          r,
          `fileDeletionDelayAfterSync must be a whole number of seconds, not "${delay}"`,
          "fileDeletionDelayAfterSync",
        );
      } else rule.deletionDelay = Number(delay);
    }
    const once = (name: string) => {
      const els = r.children.filter((c) => c.name === name);
      if (els.length > 1) chk.problem(els[1]!, `<${name}> may appear only once in a rule`);
      return els[0];
    };
    const filterEl = once("filter");
    if (filterEl) rule.filter = checkFilter(chk, filterEl);
    const chainEl = once("processorChain");
    if (chainEl) rule.processors = checkChain(chk, chainEl);
    const destEl = once("destinations");
    if (!destEl) chk.problem(r, "Missing element <destinations>");
    else rule.destinations = checkDestinations(chk, destEl, servers);
    rules.push(rule);
  });
  return rules;
}

/** Checks a rule's `<filter>`. */
export function checkFilter(chk: Checker, el: XmlElement): Filter {
  chk.attrs(el, []);
  const conditions = ["paths", "extensions", "ignoredDirs", "pattern", "size"];
  chk.children(el, conditions);
  const f: Filter = {};
  const seen = new Set<string>();
  for (const c of el.children) {
    if (!conditions.includes(c.name)) continue;
    if (seen.has(c.name)) chk.problem(c, `Condition <${c.name}> may appear only once`);
    seen.add(c.name);
    chk.attrs(c, c.name === "size" ? ["conditionType"] : []);
    const value = c.text.trim();
    if (value === "") {
      chk.problem(c, `Condition <${c.name}> is empty`);
      continue;
    }
    switch (c.name) {
      case "paths": {
        const items = chk.dirList(c, value, "path", FORBIDDEN_PATH_CHARS);
        f.paths = items.map((p) => p.replace(/\\/g, "/").replace(/^\/+|\/+$/g, "")).filter(
          (p) => {
            if (p.split("/").includes("..")) {
              chk.problem(c, `Path "${p}" must not contain ".."`);
              return false;
            }
            return true;
          },
        );
        break;
      }
      case "extensions":
        f.extensions = chk.dirList(c, value, "extension", FORBIDDEN_EXT_CHARS).map((e) =>
          e.toLowerCase()
        );
        break;
      case "ignoredDirs":
        f.ignoredDirs = chk.dirList(c, value, "ignored directory", FORBIDDEN_DIR_CHARS);
        break;
      case "pattern": {
        const re = pythonRegex(value);
        if (re instanceof Error) {
          chk.problem(c, `Invalid regular expression "${value}": ${re.message}`);
        } else f.pattern = re;
        break;
      }
      case "size": {
        const type = c.attrs.get("conditionType");
        if (type !== "minimum" && type !== "maximum") {
          chk.problem(
            c,
            `conditionType must be "minimum" or "maximum", not ${
              type === undefined ? "missing" : `"${type}"`
            }`,
            "conditionType",
          );
        }
        if (!/^\d+$/.test(value)) {
          chk.problem(c, `Size must be a whole number of bytes, not "${value}"`);
        } else if (type === "minimum" || type === "maximum") {
          f.size = { conditionType: type, bytes: Number(value) };
        }
        break;
      }
    }
  }
  if (seen.size === 0) {
    chk.problem(
      el,
      "A <filter> must set at least one condition (or leave <filter> out to match every file)",
    );
  }
  return f;
}

/** Checks a rule's `<processorChain>`; returns the processors in order. */
export function checkChain(chk: Checker, el: XmlElement): ProcessorRef[] {
  chk.attrs(el, []);
  chk.children(el, ["processor"]);
  const out: ProcessorRef[] = [];
  for (const p of el.children.filter((c) => c.name === "processor")) {
    chk.children(p, []);
    const name = p.attrs.get("name");
    if (!name) {
      chk.problem(p, 'Missing attribute "name"', "name");
      continue;
    }
    // Any name with a module attribute is a custom processor loaded from that module.
    const def = getProcessorDef(name) ??
      (p.attrs.has("module") ? getProcessorDef("custom") : undefined);
    if (!def) {
      const original = ORIGINAL_PROCESSORS.includes(name);
      const hint = closest(name, ORIGINAL_PROCESSORS);
      chk.problem(
        p,
        original
          ? `Processor "${name}" is not implemented in this build`
          : `Unknown processor "${name}"${hint ? `; did you mean "${hint}"?` : ""}`,
        "name",
      );
      continue;
    }
    const raw: Record<string, string> = {};
    for (const [k, v] of p.attrs) if (k !== "name") raw[k] = chk.expand(p, v, false);
    const { values, problems } = checkOptions(def.options ?? [], raw);
    for (const pr of problems) chk.problem(p, pr.message, pr.name);
    for (const o of def.options ?? []) {
      if (o.type === "path" && values[o.name]) {
        values[o.name] = path.resolve(chk.dir, values[o.name]!);
      }
    }
    if (values.module) values.module = path.resolve(chk.dir, values.module);
    out.push({ name, def, options: values });
  }
  return out;
}

/** Checks a rule's `<destinations>` against the known servers. */
export function checkDestinations(chk: Checker, el: XmlElement, servers: Server[]): Destination[] {
  chk.attrs(el, []);
  chk.children(el, ["destination"]);
  const out: Destination[] = [];
  const list = el.children.filter((c) => c.name === "destination");
  if (list.length === 0) chk.problem(el, "At least one <destination> is required");
  for (const d of list) {
    chk.attrs(d, ["server", "path"]);
    chk.children(d, []);
    const server = d.attrs.get("server");
    if (!server) {
      chk.problem(d, 'Missing attribute "server"', "server");
      continue;
    }
    if (!servers.some((s) => s.name === server)) {
      const hint = closest(server, servers.map((s) => s.name));
      chk.problem(
        d,
        `Destination names unknown server "${server}"${hint ? `; did you mean "${hint}"?` : ""}`,
        "server",
      );
    }
    const p = (d.attrs.get("path") ?? "").replace(/\\/g, "/").replace(/^\/+|\/+$/g, "").replace(
      /\/{2,}/g,
      "/",
    );
    if (p.split("/").some((seg) => seg === ".." || seg === ".")) {
      chk.problem(
        d,
        `Destination path "${d.attrs.get("path")}" must not contain "." or ".." segments`,
        "path",
      );
      continue;
    }
    if (out.some((o) => o.server === server && o.path === p)) {
      chk.problem(d, `Duplicate destination: server "${server}" path "${p}"`);
      continue;
    }
    out.push({ server, path: p });
  }
  return out;
}

/**
 * Compiles a Python `re` pattern as used by the original (`re.match`,
 * anchored at the start). Returns an Error when it does not compile.
 */
export function pythonRegex(pattern: string): RegExp | Error {
  const js = pattern.replace(/\(\?P</g, "(?<").replace(/\(\?P=(\w+)\)/g, "\\k<$1>");
  try {
    return new RegExp(`^(?:${js})`, "u");
  } catch {
    try {
      return new RegExp(`^(?:${js})`);
    } catch (e) {
      return e as Error;
    }
  }
}
