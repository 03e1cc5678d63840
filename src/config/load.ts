/**
 * Loads `config.xml` in stages: parse → defaults → normalize → validate.
 * Every problem is collected with its line and element path; the caller gets
 * a {@linkcode Config} or one {@linkcode ConfigError} listing them all.
 *
 * @module
 */
import { checkLoops } from "./loops.ts";
import * as path from "node:path";
import * as fs from "node:fs";
import { ConfigError } from "../errors.ts";
import { checkOptions, checkValue } from "../options.ts";
import { Checker } from "./_checker.ts";
import { checkRules, ORIGINAL_PROCESSORS, pythonRegex } from "./rules.ts";
import { checkServers } from "./servers.ts";
import { checkSources } from "./sources.ts";
import { ORIGINAL_SETTING_NAMES, SETTINGS_SPEC, toSettings } from "./settings.ts";
import { groupId } from "../util/group.ts";
import { parseStoreUrl } from "./store_url.ts";
import type { Config, Settings } from "./types.ts";
import { parseXml, type XmlElement, XmlSyntaxError } from "./xml.ts";

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
  const v = new Checker(file, options.env ?? ((n) => Deno.env.get(n)));
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
  const config = checkConfig(v, root);
  if (v.issues.length > 0) {
    v.issues.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
    throw new ConfigError(file, v.issues);
  }
  return config!;
}

/** Checks the whole document, section by section. */
function checkConfig(chk: Checker, root: XmlElement): Config | undefined {
  if (root.name !== "config") {
    chk.problem(root, `The root element must be <config>, not <${root.name}>`);
    return undefined;
  }
  chk.attrs(root, []);
  chk.children(root, ["sources", "servers", "rules", "settings"]);
  const one = (name: string): XmlElement | undefined => {
    const els = root.children.filter((c) => c.name === name);
    if (els.length > 1) chk.problem(els[1]!, `<${name}> may appear only once`);
    return els[0];
  };
  const sourcesEl = one("sources");
  const serversEl = one("servers");
  const rulesEl = one("rules");
  const settingsEl = one("settings");
  if (!sourcesEl) chk.problem(root, "Missing element <sources>");
  if (!serversEl) chk.problem(root, "Missing element <servers>");
  if (!rulesEl) chk.problem(root, "Missing element <rules>");

  const { sources, ignoredDirs } = sourcesEl
    ? checkSources(chk, sourcesEl)
    : { sources: [], ignoredDirs: [] };
  const servers = serversEl ? checkServers(chk, serversEl) : [];
  const rules = rulesEl ? checkRules(chk, rulesEl, sources, servers) : [];
  const nested = sourcesEl ? checkLoops(chk, sourcesEl, rulesEl, sources, servers) : undefined;
  const settingsValues = checkSettings(chk, settingsEl);
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
    if (settings[k]) settings[k] = path.resolve(chk.dir, settings[k]!);
  }
  checkWebDbSettings(chk, settingsEl, settings);
  checkStoreSetting(chk, settingsEl, settings);
  if (settings.http && !/^[^:\s]*:\d{1,5}$/.test(settings.http) && settingsEl) {
    chk.problem(settingsEl, `Setting "http" must be HOST:PORT, not "${settings.http}"`);
  }
  return {
    file: chk.file,
    sources,
    servers,
    rules,
    settings,
    ignoredDirs,
    secrets: [...new Set(chk.secrets)],
    ...(nested && nested.excludedDirs.length > 0 ? nested : {}),
  };
}

/** The web application databases: two distinct files, readable by an existing group. */
function checkWebDbSettings(
  chk: Checker,
  el: XmlElement | undefined,
  settings: Config["settings"],
): void {
  const at = (name: string) =>
    el?.children.find((c) => (ORIGINAL_SETTING_NAMES[c.name] ?? c.name) === name) ?? el!;
  if (settings.syncedFilesDb && settings.syncedFilesDb === settings.persistentDataDb) {
    chk.problem(
      at("persistentDataDb"),
      'Settings "syncedFilesDb" and "persistentDataDb" must name different files',
    );
  }
  if (settings.syncedFilesDbGroup && groupId(settings.syncedFilesDbGroup) === undefined) {
    chk.problem(
      at("syncedFilesDbGroup"),
      `Setting "syncedFilesDbGroup": no group "${settings.syncedFilesDbGroup}" on this system`,
    );
  }
}

/** Checks `<settings>` against the settings schema; returns the raw values. */
function checkSettings(chk: Checker, el: XmlElement | undefined): Record<string, string> {
  const raw: Record<string, string> = {};
  const lines: Record<string, XmlElement> = {};
  if (el) {
    chk.attrs(el, []);
    for (const c of el.children) {
      const name = ORIGINAL_SETTING_NAMES[c.name] ?? c.name;
      if (c.children.length > 0 || c.attrs.size > 0) {
        chk.problem(c, `Setting <${c.name}> must contain only text`);
      }
      if (name in raw) chk.problem(c, `Setting <${c.name}> appears twice`);
      let value = chk.expand(c, c.text.trim(), false);
      if (c.name === "CONSOLE_LOGGER_LEVEL") {
        value = value.replace(/^logging\./, "").toLowerCase().replace("warning", "warn");
      }
      raw[name] = value;
      lines[name] = c;
    }
  }
  const { values, problems } = checkOptions(SETTINGS_SPEC, raw);
  for (const p of problems) chk.problem(lines[p.name] ?? el!, p.message);
  return values;
}

/** The shared store: a known kind of URL; its password is a secret (masked in every output). */
function checkStoreSetting(chk: Checker, el: XmlElement | undefined, settings: Settings): void {
  const at = el?.children.find((c) => c.name === "store") ?? el;
  const parsed = parseStoreUrl(settings.store);
  if (typeof parsed === "string") {
    if (at) chk.problem(at, parsed);
    return;
  }
  if (parsed.kind !== "local" && parsed.password) chk.secrets.push(parsed.password);
  if (settings.node !== undefined && !/^[A-Za-z0-9._-]{1,64}$/.test(settings.node) && el) {
    chk.problem(
      el.children.find((c) => c.name === "node") ?? el,
      `Setting "node" must be 1–64 letters, digits, ".", "_" or "-", not "${settings.node}"`,
    );
  }
}

/** Re-exported so callers keep one import for the configuration. */
export { checkValue, ORIGINAL_PROCESSORS, pythonRegex };
