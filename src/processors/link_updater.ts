/**
 * `link_updater.CSSURLUpdater`: rewrites the URLs of a stylesheet to the
 * URLs its referenced files have on the destination server. Runs once per
 * server (`differentPerServer`).
 *
 * What is rewritten: `url(…)` in every form (double-quoted, single-quoted,
 * unquoted, with escapes), `@import "…"`, and the strings of `image-set()`.
 * Only the URL text changes; comments, formatting and hacks stay byte for
 * byte (the original re-serialised the sheet with cssutils and lost them).
 *
 * How a URL is resolved to a source file:
 * - left alone: `data:` URIs, absolute URLs with a scheme (`http:`,
 *   `https:`, …), protocol-relative URLs (`//host/x`), fragment-only
 *   references (`#id`, SVG filters) and empty URLs;
 * - the query and fragment are split off to find the file and appended
 *   again afterwards (`font.eot?#iefix` → `https://cdn/…/font.eot?#iefix`;
 *   if the destination URL has a query of its own, the two are joined with
 *   `&`); CSS escapes (`\f1 `, `\"`) and then `%XX` escapes are decoded,
 *   whatever wrote them (a minifier before this processor escapes
 *   non-ASCII names);
 * - relative URLs resolve against the stylesheet's original location;
 * - root-relative URLs (`/…`) need the source's `documentRoot`. With
 *   `basePath` (default `/`): if `documentRoot + basePath` exists, every
 *   root-relative URL maps to `documentRoot + url`; otherwise the base path
 *   is "logical" (a symlink, as in the original): URLs starting with it map
 *   to `documentRoot + rest` and others are left alone;
 * - symbolic links are resolved (`realpath`), as the original did.
 *
 * Then, for a URL whose file exists: `ctx.lookupUrl(file)` gives its URL
 * on this server. A referenced file that no rule sends to this server
 * (`ctx.willSync`) keeps its URL, with one warning per stylesheet naming
 * such files. When a referenced file is not synced yet, the stylesheet
 * is re-queued ({@linkcode RequeueError}), so it is never published with
 * a URL it could have had:
 * - when every such file is on its way (`ctx.isPending`: queued or being
 *   synced to this server, or an imported stylesheet waiting for files on
 *   their way), the stylesheet waits for them, however long that takes (a
 *   large initial sync, many chains at once): the pipeline runs it again
 *   when the last of them is synced (`waitsFor`);
 * - otherwise (not queued yet, retrying after an error, stylesheets that
 *   import each other) it polls, and after `maxWait` seconds of such waiting (default 60,
 *   below the pipeline's 50 re-queues) it is published with those URLs
 *   unchanged and a warning, so one file that will never be synced cannot
 *   hold the stylesheet back forever. `maxWait="0"` publishes at once.
 *
 * URLs of files that do not exist are left unchanged (logged at debug
 * level).
 *
 * The result lists every referenced source path in `references` (files
 * that exist, resolved; and files that do not exist yet), so the pipeline
 * can process the stylesheet again when one of them is synced, changes its
 * URL or appears.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import * as fs from "node:fs";
import * as path from "node:path";
import { RequeueError } from "../errors.ts";
import { isDir } from "../watch/source_files.ts";
import type { ProcessContext, ProcessFile, ProcessorDef, SourceInfo } from "./processor.ts";
import { label, readInput, writeOutput } from "./_util.ts";
import { type CssUrl, rewriteCssUrls, scanCssUrls, unescapeCss } from "./_css_urls.ts";

/** How a CSS URL maps to a source file. */
export type CssUrlTarget =
  | { kind: "skip"; reason: string }
  | { kind: "file"; path: string; suffix: string };

/**
 * Resolves a URL found in the stylesheet `cssPath` to a source file path
 * (not checked for existence). Exported for tests.
 */
export function resolveCssUrl(url: string, cssPath: string, source: SourceInfo): CssUrlTarget {
  const u = url.trim();
  if (u === "") return { kind: "skip", reason: "empty URL" };
  if (u.startsWith("#")) return { kind: "skip", reason: "fragment reference" };
  if (/^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(u)) return { kind: "skip", reason: "absolute URL" };
  if (u.startsWith("//")) return { kind: "skip", reason: "protocol-relative URL" };
  const cut = u.search(/[?#]/);
  const rawPath = cut < 0 ? u : u.slice(0, cut);
  const suffix = cut < 0 ? "" : u.slice(cut);
  if (rawPath === "") return { kind: "skip", reason: "query-only URL" };
  let p = rawPath;
  try {
    p = decodeURIComponent(rawPath);
  } catch {
    // A literal "%" that is not an escape: use the text as it is.
  }
  if (p.includes("\0")) return { kind: "skip", reason: "NUL in URL" };
  if (p.startsWith("/")) {
    // As in a browser, ".." cannot climb above the site's root.
    p = path.posix.resolve("/", p) + (p.endsWith("/") && p.length > 1 ? "/" : "");
    const root = source.documentRoot;
    if (!root) {
      return { kind: "skip", reason: "root-relative URL and the source has no documentRoot" };
    }
    const base = source.basePath ?? "/";
    const physical = base === "/" || isDir(path.join(root, base));
    if (physical) return { kind: "file", path: path.join(root, p), suffix };
    if (p.startsWith(base)) {
      return { kind: "file", path: path.join(root, p.slice(base.length)), suffix };
    }
    return { kind: "skip", reason: `root-relative URL outside basePath "${base}"` };
  }
  return { kind: "file", path: path.resolve(path.dirname(cssPath), p), suffix };
}

/** Appends a URL's original query and fragment to its new URL. */
export function appendSuffix(url: string, suffix: string): string {
  if (suffix === "") return url;
  const hash = suffix.indexOf("#");
  const query = hash < 0 ? suffix : suffix.slice(0, hash);
  const fragment = hash < 0 ? "" : suffix.slice(hash);
  const h = url.indexOf("#");
  let base = h < 0 ? url : url.slice(0, h);
  if (query) {
    if (!base.includes("?")) base += query;
    else if (query.length > 1) {
      base += (base.endsWith("?") || base.endsWith("&") ? "" : "&") + query.slice(1);
    }
  }
  return base + (fragment || (h < 0 ? "" : url.slice(h)));
}

function realFile(p: string): string | undefined {
  try {
    const real = fs.realpathSync(p);
    return fs.statSync(real).isFile() ? real : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Longest wait for referenced files that are on their way: the pipeline
 * normally runs the stylesheet again as soon as one of them is synced; this
 * only bounds a wait whose end was missed (a referenced file's sync failed).
 */
const UNDERWAY_WAIT_MS = 30_000;

/** Since when each stylesheet (per server) waits for references that are not on their way. */
const waitingSince = new Map<string, number>();

/** Per stylesheet (and server): the referenced files last reported as matching no rule. */
const warnedNoRule = new Map<string, string>();

/** Forgets the waiting times and warnings given (tests). */
export function resetWaiting(): void {
  waitingSince.clear();
  warnedNoRule.clear();
}

/**
 * Says once per stylesheet (until the list changes) which referenced files
 * match no rule for this server: their URLs stay unchanged, and waiting for
 * them would be pointless. Usually an extension missing from a rule (fonts,
 * source maps).
 */
function warnNoRule(key: string, files: string[], file: ProcessFile, ctx: ProcessContext): void {
  const list = [...new Set(files)].sort();
  const text = list.join("\0");
  if (list.length === 0 || warnedNoRule.get(key) === text) {
    if (list.length === 0) warnedNoRule.delete(key);
    return;
  }
  warnedNoRule.set(key, text);
  const rel = (p: string) => path.relative(ctx.source.scanPath, p).split(path.sep).join("/");
  const names = list.slice(0, 10).map((p) => JSON.stringify(rel(p))).join(", ") +
    (list.length > 10 ? ` and ${list.length - 10} more` : "");
  ctx.log.warn(
    `${label(file)}: ${list.length} referenced file(s) match no rule${
      ctx.server ? ` for server "${ctx.server}"` : ""
    }, so their URLs are left unchanged: ${names}. Add their extensions to a rule to sync them`,
  );
}

async function updateUrls(file: ProcessFile, ctx: ProcessContext) {
  const bytes = await readInput(file);
  // Latin-1 keeps every byte outside the URLs exactly as it was, whatever the encoding.
  const css = Buffer.from(bytes).toString("latin1");
  const urls = scanCssUrls(css);
  if (urls.length === 0) return undefined;
  const references = new Set<string>();
  const replacements = new Map<CssUrl, string>();
  const unsynced: string[] = [];
  /** Referenced files that no rule sends to this server: they never get a URL. */
  const noRule: string[] = [];
  for (const u of urls) {
    // The sheet is read as Latin-1 (every byte kept); a URL's own bytes are
    // UTF-8, and its escapes name code points (`\f1 ` is "ñ", as minifiers
    // write non-ASCII names): decode the bytes first, then the escapes.
    const value = unescapeCss(Buffer.from(css.slice(u.start, u.end), "latin1").toString("utf8"));
    const target = resolveCssUrl(value, file.originalPath, ctx.source);
    if (target.kind === "skip") continue;
    const real = realFile(target.path);
    if (!real) {
      references.add(target.path);
      ctx.log.debug(`${label(file)}: "${value}" refers to a missing file; left unchanged`, {
        path: target.path,
      });
      continue;
    }
    references.add(real);
    const synced = ctx.lookupUrl(real);
    if (synced === undefined) {
      if (ctx.willSync?.(real) === false) noRule.push(real);
      else unsynced.push(real);
      continue;
    }
    replacements.set(
      u,
      Buffer.from(appendSuffix(synced, target.suffix), "utf8").toString("latin1"),
    );
  }
  const key = `${file.originalPath}\0${ctx.server ?? ""}`;
  warnNoRule(key, noRule, file, ctx);
  if (unsynced.length > 0) {
    const maxWaitMs = Number(ctx.options.maxWait ?? "60") * 1000;
    const list = [...new Set(unsynced)];
    const names = list.slice(0, 5).map((p) => JSON.stringify(p)).join(", ") +
      (list.length > 5 ? ` and ${list.length - 5} more` : "");
    if (maxWaitMs > 0 && ctx.isPending && list.every((p) => ctx.isPending!(p))) {
      // Every one is on its way: wait for them, without a deadline.
      waitingSince.delete(key);
      throw new RequeueError(
        `${label(file)} waits for ${list.length} referenced file(s) being synced${
          ctx.server ? ` to "${ctx.server}"` : ""
        }: ${names}`,
        UNDERWAY_WAIT_MS,
        list,
      );
    }
    const now = Date.now();
    const since = waitingSince.get(key) ?? now;
    waitingSince.set(key, since);
    if (now - since < maxWaitMs) {
      throw new RequeueError(
        `${label(file)} waits for ${list.length} referenced file(s) to be synced${
          ctx.server ? ` to "${ctx.server}"` : ""
        }: ${names}`,
      );
    }
    ctx.log.warn(
      `${label(file)}: referenced file(s) still not synced after ${
        Math.round((now - since) / 1000)
      } s; their URLs are left unchanged: ${names}`,
    );
  }
  waitingSince.delete(key);
  const out = rewriteCssUrls(css, urls, (u) => replacements.get(u));
  const refs = [...references];
  if (out === css) return { references: refs };
  return { path: await writeOutput(ctx, file.name, Buffer.from(out, "latin1")), references: refs };
}

/** `link_updater.CSSURLUpdater`. */
export const cssUrlUpdater: ProcessorDef = {
  name: "link_updater.CSSURLUpdater",
  summary:
    "Rewrites url() and @import in stylesheets to the referenced files' URLs on each server.",
  extensions: [".css"],
  differentPerServer: true,
  createsWorkDir: true,
  options: [
    {
      name: "maxWait",
      help:
        "Seconds a stylesheet waits for referenced files that are not queued or being synced before it is published with their URLs unchanged (files on their way are always waited for; 0: never wait)",
      type: "integer",
      min: 0,
      default: "60",
    },
  ],
  process: updateUrls,
};
