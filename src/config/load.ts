/**
 * Loads `config.xml` in stages: parse → defaults → normalize → validate.
 * Every problem is collected with its line and element path; the caller gets
 * a {@linkcode Config} or one {@linkcode ConfigError} listing them all.
 *
 * @module
 */
import * as path from "node:path";
import * as fs from "node:fs";
import { ConfigError, type ConfigIssue } from "../errors.ts";
import { checkOptions, checkValue, closest } from "../options.ts";
import { getProcessorDef } from "../processors/processor.ts";
import { getTransportDef, ORIGINAL_TRANSPORTERS } from "../transports/transport.ts";
import { ORIGINAL_SETTING_NAMES, SETTINGS_SPEC, toSettings } from "./settings.ts";
import { groupId } from "../util/group.ts";
import type { Config, Destination, Filter, ProcessorRef, Rule, Server, Source } from "./types.ts";
import { elementPath, parseXml, type XmlElement, XmlSyntaxError } from "./xml.ts";

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

const NAME_RE = /^[a-zA-Z0-9_-]+$/;
const FORBIDDEN_DIR_CHARS = /[*"/\\[\]:;|=,<>]/;
const FORBIDDEN_PATH_CHARS = /[*"[\]:;|=,<>]/;
const FORBIDDEN_EXT_CHARS = /[*"/\\[\]:;|=,<>.]/;

/** Options for {@linkcode loadConfig}. */
export interface LoadOptions {
  /** Environment for `${env:NAME}` (default: the process environment). */
  env?: (name: string) => string | undefined;
}

/**
 * Reads and validates a configuration file.
 *
 * @throws {ConfigError} listing every problem, each with a line number.
 */
export function loadConfig(file: string, options: LoadOptions = {}): Config {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = fs.readFileSync(abs, "utf8");
  } catch (e) {
    const code = (e as { code?: string }).code;
    const why = code === "ENOENT"
      ? "the file does not exist"
      : code === "EACCES"
      ? "permission denied"
      : code === "EISDIR"
      ? "it is a directory"
      : (e as Error).message;
    throw new ConfigError(abs, [{ path: "config", message: `Cannot read "${abs}": ${why}` }]);
  }
  return parseConfig(text, abs, options);
}

/**
 * Validates configuration text. `file` is used for messages and to resolve
 * relative paths (relative to the file's directory).
 *
 * @throws {ConfigError} listing every problem.
 */
export function parseConfig(text: string, file: string, options: LoadOptions = {}): Config {
  const v = new Validator(file, options.env ?? ((n) => Deno.env.get(n)));
  let root: XmlElement;
  try {
    root = parseXml(text);
  } catch (e) {
    if (e instanceof XmlSyntaxError) {
      throw new ConfigError(file, [{
        line: e.line,
        path: "xml",
        message: `XML syntax error at column ${e.column}: ${e.message}`,
      }]);
    }
    throw e;
  }
  const config = v.config(root);
  if (v.issues.length > 0) {
    v.issues.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
    throw new ConfigError(file, v.issues);
  }
  return config!;
}

class Validator {
  readonly issues: ConfigIssue[] = [];
  readonly secrets: string[] = [];
  readonly #file: string;
  readonly #dir: string;
  readonly #env: (name: string) => string | undefined;

  constructor(file: string, env: (name: string) => string | undefined) {
    this.#file = file;
    this.#dir = path.dirname(file);
    this.#env = env;
  }

  problem(el: XmlElement, message: string, attr?: string) {
    this.issues.push({
      line: el.line,
      path: elementPath(el) + (attr ? `@${attr}` : ""),
      message,
    });
  }

  /** Reports attributes not in `allowed`; returns nothing. */
  attrs(el: XmlElement, allowed: string[]) {
    for (const name of el.attrs.keys()) {
      if (!allowed.includes(name)) {
        const hint = closest(name, allowed);
        this.problem(
          el,
          `Unknown attribute "${name}" on <${el.name}>${hint ? `; did you mean "${hint}"?` : ""}${
            allowed.length ? ` (valid: ${allowed.join(", ")})` : ""
          }`,
          name,
        );
      }
    }
  }

  children(el: XmlElement, allowed: string[]) {
    for (const c of el.children) {
      if (!allowed.includes(c.name)) {
        const hint = closest(c.name, allowed);
        this.problem(
          c,
          `Unknown element <${c.name}> in <${el.name}>${hint ? `; did you mean <${hint}>?` : ""}${
            allowed.length ? ` (valid: ${allowed.map((a) => `<${a}>`).join(", ")})` : ""
          }`,
        );
      }
    }
  }

  noText(el: XmlElement) {
    if (el.text.trim() !== "") this.problem(el, `<${el.name}> must not contain text`);
  }

  /** Substitutes `${env:NAME}` and `${file:PATH}` references. */
  expand(el: XmlElement, value: string, secret: boolean): string {
    return value.replace(/\$\{(env|file):([^}]+)\}/g, (_m, kind: string, ref: string) => {
      let out: string | undefined;
      if (kind === "env") {
        out = this.#env(ref.trim());
        if (out === undefined) {
          this.problem(el, `Environment variable "${ref.trim()}" is not set`);
          return "";
        }
      } else {
        const p = path.resolve(this.#dir, ref.trim());
        try {
          out = fs.readFileSync(p, "utf8").replace(/\r?\n$/, "");
        } catch (e) {
          this.problem(el, `Cannot read secret file "${p}": ${(e as Error).message}`);
          return "";
        }
      }
      if (secret || kind === "file") this.secrets.push(out);
      return out;
    });
  }

  config(root: XmlElement): Config | undefined {
    if (root.name !== "config") {
      this.problem(root, `The root element must be <config>, not <${root.name}>`);
      return undefined;
    }
    this.attrs(root, []);
    this.children(root, ["sources", "servers", "rules", "settings"]);
    const one = (name: string): XmlElement | undefined => {
      const els = root.children.filter((c) => c.name === name);
      if (els.length > 1) this.problem(els[1]!, `<${name}> may appear only once`);
      return els[0];
    };
    const sourcesEl = one("sources");
    const serversEl = one("servers");
    const rulesEl = one("rules");
    const settingsEl = one("settings");
    if (!sourcesEl) this.problem(root, "Missing element <sources>");
    if (!serversEl) this.problem(root, "Missing element <servers>");
    if (!rulesEl) this.problem(root, "Missing element <rules>");

    const { sources, ignoredDirs } = sourcesEl
      ? this.sources(sourcesEl)
      : { sources: [], ignoredDirs: [] };
    const servers = serversEl ? this.servers(serversEl) : [];
    const rules = rulesEl ? this.rules(rulesEl, sources, servers) : [];
    const nested = sourcesEl ? this.loops(sourcesEl, rulesEl, sources, servers) : undefined;
    const settingsValues = this.settings(settingsEl);
    const settings = toSettings(settingsValues);
    for (
      const k of [
        "dataDir",
        "workingDir",
        "pidFile",
        "logFile",
        "syncedFilesDb",
        "persistentDataDb",
      ] as const
    ) {
      if (settings[k]) settings[k] = path.resolve(this.#dir, settings[k]!);
    }
    this.webDbSettings(settingsEl, settings);
    if (settings.http && !/^[^:\s]*:\d{1,5}$/.test(settings.http) && settingsEl) {
      this.problem(settingsEl, `Setting "http" must be HOST:PORT, not "${settings.http}"`);
    }
    return {
      file: this.#file,
      sources,
      servers,
      rules,
      settings,
      ignoredDirs,
      secrets: [...new Set(this.secrets)],
      ...(nested && nested.excludedDirs.length > 0 ? nested : {}),
    };
  }

  /**
   * Configurations that feed on their own output. One tree under two source
   * names (every file synced twice, racing) and a destination folder that is
   * a source's own folder are errors. A local destination folder inside a
   * source's tree (the original's sample config has one) is excluded from
   * that source — otherwise its output would be synced again, endlessly —
   * and a note says so. Paths are compared after resolving symlinks, as far
   * as they exist.
   */
  loops(
    sourcesEl: XmlElement,
    rulesEl: XmlElement | undefined,
    sources: Source[],
    servers: Server[],
  ): { excludedDirs: string[]; notes: string[] } {
    const excludedDirs: string[] = [];
    const notes: string[] = [];
    const sourceEls = sourcesEl.children.filter((c) => c.name === "source");
    sources.forEach((b, j) => {
      const a = sources.slice(0, j).find((a) => a.scanPath && a.scanPath === b.scanPath);
      if (a && sourceEls[j]) {
        this.problem(
          sourceEls[j],
          `scanPath of source "${b.name}" is the same folder as that of source "${a.name}" ("${a.scanPath}")`,
          "scanPath",
        );
      }
    });
    for (const r of rulesEl?.children.filter((c) => c.name === "rule") ?? []) {
      for (const ds of r.children.filter((c) => c.name === "destinations")) {
        for (const d of ds.children.filter((c) => c.name === "destination")) {
          const server = servers.find((s) => s.name === d.attrs.get("server"));
          const folder = server && localFolder(server, this.#dir);
          if (!folder) continue;
          const sub = (d.attrs.get("path") ?? "").split(/[\\/]+/).filter((x) => x !== "");
          const target = path.join(folder, ...sub);
          for (const src of sources) {
            if (!src.scanPath) continue;
            if (target === src.scanPath) {
              this.problem(
                d,
                `Destination folder "${target}" (server "${server.name}") is scanPath of source "${src.name}" ("${src.scanPath}"): what is synced there would be synced again, endlessly`,
                "server",
              );
            } else if (
              target.startsWith(src.scanPath + path.sep) && !excludedDirs.includes(target)
            ) {
              excludedDirs.push(target);
              notes.push(
                `Destination folder "${target}" (server "${server.name}", line ${d.line}) lies inside source "${src.name}": it is excluded from that source's scan`,
              );
            }
          }
        }
      }
    }
    return { excludedDirs, notes };
  }

  dirList(el: XmlElement, value: string, what: string, forbidden: RegExp, attr?: string): string[] {
    const items = value.split(":").map((s) => s.trim()).filter((s) => s !== "");
    for (const item of items) {
      if (forbidden.test(item)) {
        this.problem(el, `Invalid ${what} "${item}": forbidden character`, attr);
      }
    }
    return items;
  }

  sources(el: XmlElement): { sources: Source[]; ignoredDirs: string[] } {
    this.attrs(el, ["ignoredDirs"]);
    this.children(el, ["source"]);
    this.noText(el);
    const ignoredDirs = this.dirList(
      el,
      el.attrs.get("ignoredDirs") ?? "",
      "ignored directory",
      FORBIDDEN_DIR_CHARS,
      "ignoredDirs",
    );
    const sources: Source[] = [];
    const names = new Set<string>();
    const list = el.children.filter((c) => c.name === "source");
    if (list.length === 0) this.problem(el, "At least one <source> is required");
    for (const s of list) {
      this.attrs(s, ["name", "scanPath", "documentRoot", "basePath", "watch"]);
      this.children(s, []);
      const name = s.attrs.get("name");
      if (name === undefined || name === "") this.problem(s, 'Missing attribute "name"', "name");
      else if (!NAME_RE.test(name)) {
        this.problem(s, `Invalid source name "${name}": use letters, digits, "-" and "_"`, "name");
      } else if (names.has(name)) this.problem(s, `Duplicate source name "${name}"`, "name");
      else names.add(name);
      const scanPath = s.attrs.get("scanPath");
      let real = "";
      if (!scanPath) this.problem(s, 'Missing attribute "scanPath"', "scanPath");
      else {
        const abs = path.resolve(this.#dir, scanPath);
        try {
          real = fs.realpathSync(abs);
          if (!fs.statSync(real).isDirectory()) {
            this.problem(s, `scanPath "${scanPath}" is not a directory`, "scanPath");
          }
        } catch {
          this.problem(s, `scanPath "${scanPath}" does not exist`, "scanPath");
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
        const abs = path.resolve(this.#dir, docRoot);
        try {
          src.documentRoot = fs.realpathSync(abs);
        } catch {
          this.problem(s, `documentRoot "${docRoot}" does not exist`, "documentRoot");
        }
      }
      const basePath = s.attrs.get("basePath");
      if (basePath !== undefined) {
        if (!basePath.startsWith("/") || !basePath.endsWith("/")) {
          this.problem(s, `basePath "${basePath}" must start and end with "/"`, "basePath");
        } else src.basePath = basePath;
      }
      const watch = s.attrs.get("watch");
      if (watch !== undefined) {
        if (watch === "auto" || watch === "poll") src.watch = watch;
        else this.problem(s, `watch must be "auto" or "poll", not "${watch}"`, "watch");
      }
      sources.push(src);
    }
    // Nested sources would sync files twice and race each other.
    for (const a of sources) {
      for (const b of sources) {
        if (a !== b && a.scanPath && b.scanPath && a.scanPath.startsWith(b.scanPath + path.sep)) {
          this.issues.push({
            line: a.line,
            path: `config/sources/source[${JSON.stringify(a.name)}]@scanPath`,
            message: `scanPath of source "${a.name}" lies inside source "${b.name}"`,
          });
        }
      }
    }
    return { sources, ignoredDirs };
  }

  servers(el: XmlElement): Server[] {
    this.attrs(el, []);
    this.children(el, ["server"]);
    this.noText(el);
    const servers: Server[] = [];
    const names = new Set<string>();
    for (const s of el.children.filter((c) => c.name === "server")) {
      this.attrs(s, ["name", "transporter", "maxConnections"]);
      const name = s.attrs.get("name");
      if (!name) this.problem(s, 'Missing attribute "name"', "name");
      else if (names.has(name)) this.problem(s, `Duplicate server name "${name}"`, "name");
      else names.add(name);
      const transporter = s.attrs.get("transporter");
      const def = transporter ? getTransportDef(transporter) : undefined;
      if (!transporter) this.problem(s, 'Missing attribute "transporter"', "transporter");
      else if (!def) {
        const original = (ORIGINAL_TRANSPORTERS as readonly string[]).includes(transporter);
        this.problem(
          s,
          original
            ? `Transporter "${transporter}" is not implemented in this build`
            : `Unknown transporter "${transporter}"${
              closest(transporter, [...ORIGINAL_TRANSPORTERS])
                ? `; did you mean "${closest(transporter, [...ORIGINAL_TRANSPORTERS])}"?`
                : ""
            }`,
          "transporter",
        );
      }
      let maxConnections = 0;
      const mc = s.attrs.get("maxConnections");
      if (mc !== undefined) {
        if (!/^\s*\d+\s*$/.test(mc)) {
          this.problem(
            s,
            `maxConnections must be a whole number ≥ 0, not "${mc}"`,
            "maxConnections",
          );
        } else maxConnections = Number(mc);
      }
      const raw: Record<string, string> = {};
      const lines: Record<string, XmlElement> = {};
      const secretNames = new Set(def?.options.filter((o) => o.secret).map((o) => o.name));
      for (const c of s.children) {
        if (c.children.length > 0 || c.attrs.size > 0) {
          this.problem(c, `Setting <${c.name}> must contain only text`);
        }
        if (c.name in raw) this.problem(c, `Setting <${c.name}> appears twice`);
        raw[c.name] = this.expand(c, c.text.trim(), secretNames.has(c.name));
        lines[c.name] = c;
      }
      const server: Server = {
        name: name ?? "",
        transporter: def?.name ?? transporter ?? "",
        settings: raw,
        maxConnections,
        line: s.line,
      };
      if (def) {
        const { values, problems } = checkOptions(def.options, raw);
        for (const p of problems) this.problem(lines[p.name] ?? s, p.message);
        if (problems.length === 0) {
          for (const p of def.validate?.(values) ?? []) this.problem(s, p);
        }
        // Relative paths in settings are relative to the config file, like every other path.
        for (const o of def.options) {
          if (o.type === "path" && values[o.name] && !values[o.name]!.startsWith("~")) {
            values[o.name] = path.resolve(this.#dir, values[o.name]!);
          } else if (o.type === "path" && values[o.name]?.startsWith("~/")) {
            values[o.name] = path.join(Deno.env.get("HOME") ?? "/", values[o.name]!.slice(2));
          }
        }
        server.settings = values;
        for (const o of def.options) {
          if (o.secret && values[o.name]) this.secrets.push(values[o.name]!);
        }
      }
      servers.push(server);
    }
    return servers;
  }

  rules(el: XmlElement, sources: Source[], servers: Server[]): Rule[] {
    this.attrs(el, []);
    this.children(el, ["rule"]);
    this.noText(el);
    const rules: Rule[] = [];
    const list = el.children.filter((c) => c.name === "rule");
    if (list.length === 0) this.problem(el, "At least one <rule> is required");
    list.forEach((r, index) => {
      this.attrs(r, ["for", "label", "fileDeletionDelayAfterSync"]);
      this.children(r, ["filter", "processorChain", "destinations"]);
      const source = r.attrs.get("for");
      if (!source) this.problem(r, 'Missing attribute "for"', "for");
      else if (!sources.some((s) => s.name === source)) {
        const hint = closest(source, sources.map((s) => s.name));
        this.problem(
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
          this.problem(
            r,
            `fileDeletionDelayAfterSync must be a whole number of seconds, not "${delay}"`,
            "fileDeletionDelayAfterSync",
          );
        } else rule.deletionDelay = Number(delay);
      }
      const once = (name: string) => {
        const els = r.children.filter((c) => c.name === name);
        if (els.length > 1) this.problem(els[1]!, `<${name}> may appear only once in a rule`);
        return els[0];
      };
      const filterEl = once("filter");
      if (filterEl) rule.filter = this.filter(filterEl);
      const chainEl = once("processorChain");
      if (chainEl) rule.processors = this.chain(chainEl);
      const destEl = once("destinations");
      if (!destEl) this.problem(r, "Missing element <destinations>");
      else rule.destinations = this.destinations(destEl, servers);
      rules.push(rule);
    });
    return rules;
  }

  filter(el: XmlElement): Filter {
    this.attrs(el, []);
    const conditions = ["paths", "extensions", "ignoredDirs", "pattern", "size"];
    this.children(el, conditions);
    const f: Filter = {};
    const seen = new Set<string>();
    for (const c of el.children) {
      if (!conditions.includes(c.name)) continue;
      if (seen.has(c.name)) this.problem(c, `Condition <${c.name}> may appear only once`);
      seen.add(c.name);
      this.attrs(c, c.name === "size" ? ["conditionType"] : []);
      const value = c.text.trim();
      if (value === "") {
        this.problem(c, `Condition <${c.name}> is empty`);
        continue;
      }
      switch (c.name) {
        case "paths": {
          const items = this.dirList(c, value, "path", FORBIDDEN_PATH_CHARS);
          f.paths = items.map((p) => p.replace(/\\/g, "/").replace(/^\/+|\/+$/g, "")).filter(
            (p) => {
              if (p.split("/").includes("..")) {
                this.problem(c, `Path "${p}" must not contain ".."`);
                return false;
              }
              return true;
            },
          );
          break;
        }
        case "extensions":
          f.extensions = this.dirList(c, value, "extension", FORBIDDEN_EXT_CHARS).map((e) =>
            e.toLowerCase()
          );
          break;
        case "ignoredDirs":
          f.ignoredDirs = this.dirList(c, value, "ignored directory", FORBIDDEN_DIR_CHARS);
          break;
        case "pattern": {
          const re = pythonRegex(value);
          if (re instanceof Error) {
            this.problem(c, `Invalid regular expression "${value}": ${re.message}`);
          } else f.pattern = re;
          break;
        }
        case "size": {
          const type = c.attrs.get("conditionType");
          if (type !== "minimum" && type !== "maximum") {
            this.problem(
              c,
              `conditionType must be "minimum" or "maximum", not ${
                type === undefined ? "missing" : `"${type}"`
              }`,
              "conditionType",
            );
          }
          if (!/^\d+$/.test(value)) {
            this.problem(c, `Size must be a whole number of bytes, not "${value}"`);
          } else if (type === "minimum" || type === "maximum") {
            f.size = { conditionType: type, bytes: Number(value) };
          }
          break;
        }
      }
    }
    if (seen.size === 0) {
      this.problem(
        el,
        "A <filter> must set at least one condition (or leave <filter> out to match every file)",
      );
    }
    return f;
  }

  chain(el: XmlElement): ProcessorRef[] {
    this.attrs(el, []);
    this.children(el, ["processor"]);
    const out: ProcessorRef[] = [];
    for (const p of el.children.filter((c) => c.name === "processor")) {
      this.children(p, []);
      const name = p.attrs.get("name");
      if (!name) {
        this.problem(p, 'Missing attribute "name"', "name");
        continue;
      }
      // Any name with a module attribute is a custom processor loaded from that module.
      const def = getProcessorDef(name) ??
        (p.attrs.has("module") ? getProcessorDef("custom") : undefined);
      if (!def) {
        const original = ORIGINAL_PROCESSORS.includes(name);
        const hint = closest(name, ORIGINAL_PROCESSORS);
        this.problem(
          p,
          original
            ? `Processor "${name}" is not implemented in this build`
            : `Unknown processor "${name}"${hint ? `; did you mean "${hint}"?` : ""}`,
          "name",
        );
        continue;
      }
      const raw: Record<string, string> = {};
      for (const [k, v] of p.attrs) if (k !== "name") raw[k] = this.expand(p, v, false);
      const { values, problems } = checkOptions(def.options ?? [], raw);
      for (const pr of problems) this.problem(p, pr.message, pr.name);
      for (const o of def.options ?? []) {
        if (o.type === "path" && values[o.name]) {
          values[o.name] = path.resolve(this.#dir, values[o.name]!);
        }
      }
      if (values.module) values.module = path.resolve(this.#dir, values.module);
      out.push({ name, def, options: values });
    }
    return out;
  }

  destinations(el: XmlElement, servers: Server[]): Destination[] {
    this.attrs(el, []);
    this.children(el, ["destination"]);
    const out: Destination[] = [];
    const list = el.children.filter((c) => c.name === "destination");
    if (list.length === 0) this.problem(el, "At least one <destination> is required");
    for (const d of list) {
      this.attrs(d, ["server", "path"]);
      this.children(d, []);
      const server = d.attrs.get("server");
      if (!server) {
        this.problem(d, 'Missing attribute "server"', "server");
        continue;
      }
      if (!servers.some((s) => s.name === server)) {
        const hint = closest(server, servers.map((s) => s.name));
        this.problem(
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
        this.problem(
          d,
          `Destination path "${d.attrs.get("path")}" must not contain "." or ".." segments`,
          "path",
        );
        continue;
      }
      if (out.some((o) => o.server === server && o.path === p)) {
        this.problem(d, `Duplicate destination: server "${server}" path "${p}"`);
        continue;
      }
      out.push({ server, path: p });
    }
    return out;
  }

  /** The web application databases: two distinct files, readable by an existing group. */
  webDbSettings(el: XmlElement | undefined, settings: Config["settings"]): void {
    const at = (name: string) =>
      el?.children.find((c) => (ORIGINAL_SETTING_NAMES[c.name] ?? c.name) === name) ?? el!;
    if (settings.syncedFilesDb && settings.syncedFilesDb === settings.persistentDataDb) {
      this.problem(
        at("persistentDataDb"),
        'Settings "syncedFilesDb" and "persistentDataDb" must name different files',
      );
    }
    if (settings.syncedFilesDbGroup && groupId(settings.syncedFilesDbGroup) === undefined) {
      this.problem(
        at("syncedFilesDbGroup"),
        `Setting "syncedFilesDbGroup": no group "${settings.syncedFilesDbGroup}" on this system`,
      );
    }
  }

  settings(el: XmlElement | undefined): Record<string, string> {
    const raw: Record<string, string> = {};
    const lines: Record<string, XmlElement> = {};
    if (el) {
      this.attrs(el, []);
      for (const c of el.children) {
        const name = ORIGINAL_SETTING_NAMES[c.name] ?? c.name;
        if (c.children.length > 0 || c.attrs.size > 0) {
          this.problem(c, `Setting <${c.name}> must contain only text`);
        }
        if (name in raw) this.problem(c, `Setting <${c.name}> appears twice`);
        let value = this.expand(c, c.text.trim(), false);
        if (c.name === "CONSOLE_LOGGER_LEVEL") {
          value = value.replace(/^logging\./, "").toLowerCase().replace("warning", "warn");
        }
        raw[name] = value;
        lines[name] = c;
      }
    }
    const { values, problems } = checkOptions(SETTINGS_SPEC, raw);
    for (const p of problems) this.problem(lines[p.name] ?? el!, p.message);
    return values;
  }
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

/** Re-exported so callers can validate single values. */
export { checkValue };

/**
 * The local folder a server writes into — the `location` path option of a
 * local transporter — symlinks resolved as far as the path exists; else
 * `undefined`.
 */
function localFolder(server: Server, configDir: string): string | undefined {
  const def = getTransportDef(server.transporter);
  const opt = def?.options.find((o) => o.name === "location" && o.type === "path");
  const value = server.settings["location"];
  if (!opt || typeof value !== "string" || value === "") return undefined;
  let head = path.resolve(configDir, value);
  const tail: string[] = [];
  for (;;) {
    try {
      return path.join(fs.realpathSync(head), ...tail);
    } catch {
      const parent = path.dirname(head);
      if (parent === head) return path.join(head, ...tail);
      tail.unshift(path.basename(head));
      head = parent;
    }
  }
}
