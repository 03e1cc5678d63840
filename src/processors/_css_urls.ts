/**
 * A small CSS scanner that finds the URLs of a stylesheet — `url(…)`
 * (quoted or not), `@import "…"` and the strings of `image-set(…)` — and
 * rewrites them in place. Everything else (comments, formatting, hacks,
 * invalid rules) is copied byte for byte.
 *
 * It follows the tokenizer of CSS Syntax Level 3 closely enough for this:
 * comments, single- and double-quoted strings with escapes and line
 * continuations, unquoted `url(` bodies with escapes, identifiers with
 * escapes (`myurl(` is not `url(`; `\75rl(` is, as in browsers).
 *
 * @module
 */

/** One URL found in a stylesheet. */
export interface CssUrl {
  /** Offset of the first character of the raw URL text (inside the quotes, if any). */
  start: number;
  /** Offset just past the raw URL text. */
  end: number;
  /** The URL with CSS escapes decoded. */
  value: string;
  /** Quote character around the URL, `""` for an unquoted `url()`. */
  quote: "" | '"' | "'";
  /** Where the URL was found. */
  kind: "url" | "import" | "image-set";
}

function isWs(c: string | undefined): boolean {
  return c === " " || c === "\t" || c === "\n" || c === "\r" || c === "\f";
}

function isNameChar(c: string | undefined): boolean {
  if (c === undefined) return false;
  return /[A-Za-z0-9_-]/.test(c) || c.charCodeAt(0) >= 0x80;
}

function isNameStart(c: string | undefined): boolean {
  if (c === undefined) return false;
  return /[A-Za-z_]/.test(c) || c.charCodeAt(0) >= 0x80;
}

/**
 * Decodes CSS escapes (`\"`, `\)`, `\20 `, `\e9`) and drops escaped
 * newlines (line continuations in strings).
 */
export function unescapeCss(raw: string): string {
  if (!raw.includes("\\")) return raw;
  let out = "";
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c !== "\\") {
      out += c;
      continue;
    }
    const n = raw[i + 1];
    if (n === undefined) break;
    if (n === "\n" || n === "\f") {
      i++;
      continue;
    }
    if (n === "\r") {
      i += raw[i + 2] === "\n" ? 2 : 1;
      continue;
    }
    const hex = /^[0-9a-fA-F]{1,6}/.exec(raw.slice(i + 1, i + 7));
    if (hex) {
      const cp = parseInt(hex[0], 16);
      out += cp === 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)
        ? "\ufffd"
        : String.fromCodePoint(cp);
      i += hex[0].length;
      if (raw[i + 1] === "\r" && raw[i + 2] === "\n") i += 2;
      else if (isWs(raw[i + 1])) i += 1;
      continue;
    }
    out += n;
    i++;
  }
  return out;
}

/** Escapes a URL for use inside a quoted CSS string. */
export function quoteCss(value: string, quote: '"' | "'"): string {
  return value.replace(
    /[\\\n\r\f]/g,
    (c) => c === "\\" ? "\\\\" : `\\${c.charCodeAt(0).toString(16)} `,
  )
    .replaceAll(quote, "\\" + quote);
}

/** Formats a URL for the position of `url`: same quoting; an unquoted URL that needs quoting gets `"`. */
export function formatCssUrl(value: string, quote: CssUrl["quote"]): string {
  if (quote) return quoteCss(value, quote);
  // deno-lint-ignore no-control-regex
  if (/[\s"'()\\]|[\x00-\x1f\x7f]/.test(value)) return `"${quoteCss(value, '"')}"`;
  return value;
}

/** Finds every URL of a stylesheet, in order. */
export function scanCssUrls(css: string): CssUrl[] {
  const urls: CssUrl[] = [];
  const n = css.length;
  let i = 0;
  /** Waiting for the first token after `@import`. */
  let afterImport = false;
  /** Paren depths at which an `image-set(` group was opened. */
  const imageSets: number[] = [];
  let depth = 0;

  const skipComment = (): boolean => {
    if (css[i] === "/" && css[i + 1] === "*") {
      const end = css.indexOf("*/", i + 2);
      i = end < 0 ? n : end + 2;
      return true;
    }
    return false;
  };

  /** Reads a string starting at the quote at `i`; returns the raw content range. */
  const readString = (): { start: number; end: number; quote: '"' | "'" } => {
    const quote = css[i] as '"' | "'";
    const start = ++i;
    while (i < n) {
      const c = css[i]!;
      if (c === "\\") {
        i += 2;
        continue;
      }
      if (c === quote) {
        const end = i++;
        return { start, end, quote };
      }
      if (c === "\n" || c === "\r" || c === "\f") break; // bad string: ends at the newline
      i++;
    }
    return { start, end: Math.min(i, n), quote };
  };

  const readName = (): string => {
    let name = "";
    while (i < n) {
      const c = css[i]!;
      if (c === "\\" && css[i + 1] !== "\n") {
        name += "\\" + (css[i + 1] ?? "");
        i += 2;
      } else if (isNameChar(c)) {
        name += c;
        i++;
      } else break;
    }
    return name;
  };

  /** Parses a `url(` body; `i` is just past the `(`. */
  const readUrlBody = () => {
    let j = i;
    while (j < n && isWs(css[j])) j++;
    if (css[j] === '"' || css[j] === "'") {
      // A function with a string argument: url("…").
      i = j;
      const s = readString();
      urls.push({ ...s, value: unescapeCss(css.slice(s.start, s.end)), kind: "url" });
      depth++; // the ")" is consumed by the main loop
      return;
    }
    const start = j;
    let end = j;
    while (j < n) {
      const c = css[j]!;
      if (c === "\\" && j + 1 < n) {
        j += 2;
        end = j;
        continue;
      }
      if (c === ")") break;
      j++;
      if (!isWs(c)) end = j;
    }
    if (end > start) {
      urls.push({ start, end, value: unescapeCss(css.slice(start, end)), quote: "", kind: "url" });
    }
    i = j < n ? j + 1 : n;
  };

  while (i < n) {
    if (skipComment()) continue;
    const c = css[i]!;
    if (c === '"' || c === "'") {
      const s = readString();
      if (afterImport || (imageSets.length > 0 && imageSets[imageSets.length - 1] === depth)) {
        urls.push({
          ...s,
          value: unescapeCss(css.slice(s.start, s.end)),
          kind: afterImport ? "import" : "image-set",
        });
      }
      afterImport = false;
      continue;
    }
    if (c === "@" && (isNameStart(css[i + 1]) || css[i + 1] === "-")) {
      i++;
      afterImport = unescapeCss(readName()).toLowerCase() === "import";
      continue;
    }
    if (
      isNameStart(c) || (c === "-" && (isNameStart(css[i + 1]) || css[i + 1] === "-")) ||
      (c === "\\" && css[i + 1] !== "\n")
    ) {
      const name = unescapeCss(readName()).toLowerCase();
      if (css[i] === "(") {
        i++;
        if (name === "url") {
          readUrlBody();
        } else {
          depth++;
          if (name === "image-set" || name === "-webkit-image-set") imageSets.push(depth);
        }
      }
      afterImport = false;
      continue;
    }
    if (c === "(") depth++;
    else if (c === ")") {
      if (imageSets.length > 0 && imageSets[imageSets.length - 1] === depth) imageSets.pop();
      depth = Math.max(0, depth - 1);
    } else if (c === ";" || c === "{" || c === "}") {
      imageSets.length = 0;
      depth = 0;
    }
    if (!isWs(c)) afterImport = false;
    i++;
  }
  return urls;
}

/**
 * Replaces URLs in a stylesheet. `replace` returns the new URL (decoded) or
 * undefined to keep the old text. Only the URL text changes.
 */
export function rewriteCssUrls(
  css: string,
  urls: readonly CssUrl[],
  replace: (url: CssUrl) => string | undefined,
): string {
  let out = "";
  let last = 0;
  for (const u of urls) {
    const next = replace(u);
    if (next === undefined || next === u.value) continue;
    out += css.slice(last, u.start) + formatCssUrl(next, u.quote);
    last = u.end;
  }
  return last === 0 ? css : out + css.slice(last);
}
