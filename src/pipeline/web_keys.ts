/**
 * The keys web applications look files up by in the synced files database.
 *
 * The daemon stores every file under its real (symlink-resolved) absolute
 * path. The Drupal 7 / Backdrop CDN module asks for
 * `realpath('.') . '/' . $path`: the Drupal root resolved, the path below it
 * as Drupal names it, and for `public://` files percent-encoded per segment
 * (Drupal's `drupal_encode_path()`, i.e. PHP's `rawurlencode()` with `/`
 * kept). So each file is also published under:
 *
 * - the path through the source's `scanPath` as configured, when that is a
 *   symlink (a `sites/default/files` pointing elsewhere);
 * - the percent-encoded form below the Drupal root: `documentRoot` +
 *   `basePath` when set, else the source's directory (equivalent whenever
 *   the directories in between need no encoding, as `sites/default/files`).
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Config, Source } from "../config/types.ts";

/** PHP's `rawurlencode()`: everything but `A-Z a-z 0-9 - _ . ~` as `%XX` of the UTF-8 bytes. */
export function rawUrlEncode(s: string): string {
  return encodeURIComponent(s).replace(
    /[!'()*]/g,
    (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase(),
  );
}

const UNRESERVED_PATH = /^[A-Za-z0-9\-_.~/]*$/;

/** Drupal's `drupal_encode_path()`: {@linkcode rawUrlEncode} per `/`-separated segment. */
export function drupalEncodePath(p: string): string {
  // Most names need no encoding at all.
  if (UNRESERVED_PATH.test(p)) return p;
  return p.split("/").map(rawUrlEncode).join("/");
}

interface SourceKeys {
  scanPath: string;
  /** Directories (the real one first) under which the source's files are also known. */
  bases: string[];
  /** The Drupal root: as reached (`documentRoot` + `basePath`) and resolved. */
  root?: { logical: string; real: string };
}

const cache = new WeakMap<Config, SourceKeys[]>();

function under(p: string, dir: string): string | undefined {
  if (p === dir) return "";
  const d = dir.endsWith("/") ? dir : dir + "/";
  return p.startsWith(d) ? p.slice(d.length) : undefined;
}

function sourceKeys(config: Config, source: Source): SourceKeys {
  const configured = source.configuredPath
    ? path.resolve(path.dirname(config.file), source.configuredPath)
    : source.scanPath;
  const bases = [source.scanPath];
  if (configured !== source.scanPath) bases.push(configured);
  const out: SourceKeys = { scanPath: source.scanPath, bases };
  if (source.documentRoot) {
    const logical = path.resolve(source.documentRoot, "." + (source.basePath ?? "/"));
    let real = source.documentRoot;
    try {
      real = fs.realpathSync(logical);
    } catch {
      // A "logical" base path (served through an alias): the site's root is the document root.
    }
    out.root = { logical, real };
  }
  return out;
}

/** Every key under which `inputFile` (a real absolute path) is published; the real path first. */
export function webKeys(config: Config, inputFile: string): string[] {
  let sources = cache.get(config);
  if (!sources) {
    sources = config.sources.map((s) => sourceKeys(config, s));
    cache.set(config, sources);
  }
  const keys = new Set([inputFile]);
  for (const s of sources) {
    const rel = under(inputFile, s.scanPath);
    if (rel === undefined || rel === "") continue;
    for (const base of s.bases) {
      keys.add(`${base}/${rel}`);
      keys.add(`${base}/${drupalEncodePath(rel)}`);
      if (!s.root) continue;
      for (const root of [s.root.real, s.root.logical]) {
        const baseRel = under(base, root);
        if (baseRel === undefined) continue;
        const fromRoot = baseRel ? `${baseRel}/${rel}` : rel;
        keys.add(`${s.root.real}/${fromRoot}`);
        keys.add(`${s.root.real}/${drupalEncodePath(fromRoot)}`);
      }
    }
  }
  return [...keys];
}

/**
 * Source directories whose files have keys besides their real path even
 * when their names need no percent-encoding (a symlinked `scanPath`, a
 * Drupal root): the only ones, with names that need encoding, for which
 * {@linkcode webKeys} returns more than the real path.
 */
export function aliasedDirs(config: Config): string[] {
  return config.sources.map((s) => sourceKeys(config, s))
    .filter((k) => k.bases.length > 1 || k.root !== undefined)
    .map((k) => k.scanPath);
}
