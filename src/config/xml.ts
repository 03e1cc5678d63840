/**
 * A strict XML reader that keeps line numbers for every element and
 * attribute, so configuration errors can name the line.
 *
 * @module
 */
import { SaxesParser } from "saxes";

/** One XML element with its position in the file. */
export interface XmlElement {
  name: string;
  /** Attributes in document order, with the line of their element. */
  attrs: Map<string, string>;
  children: XmlElement[];
  /** Concatenated text content (direct children only), untrimmed. */
  text: string;
  /** 1-based line of the start tag. */
  line: number;
  parent?: XmlElement;
}

/** A well-formedness error with its position. */
export class XmlSyntaxError extends Error {
  readonly line: number;
  readonly column: number;

  constructor(message: string, line: number, column: number) {
    super(message);
    this.name = "XmlSyntaxError";
    this.line = line;
    this.column = column;
  }
}

/** Parses an XML document and returns its root element. Throws {@linkcode XmlSyntaxError}. */
export function parseXml(text: string): XmlElement {
  const parser = new SaxesParser({ position: true });
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  let error: XmlSyntaxError | undefined;
  parser.on("error", (e) => {
    if (!error) {
      const m = /^(?:[^:]*:)?(\d+):(\d+): (.*)$/s.exec(e.message);
      error = m
        ? new XmlSyntaxError(m[3]!, Number(m[1]), Number(m[2]))
        : new XmlSyntaxError(e.message, parser.line, parser.column);
      // saxes closes the elements a wrong close tag skips before it reports
      // the error: the first of them closed here is the one left open.
      const open = skipped?.at === parser.position ? skipped.el : stack.at(-1);
      error = nameBothTags(error, text, open);
    }
  });
  parser.on("opentag", (tag) => {
    const el: XmlElement = {
      name: tag.name,
      attrs: new Map(),
      children: [],
      text: "",
      line: parser.line,
      parent: stack.at(-1),
    };
    for (const [k, v] of Object.entries(tag.attributes)) {
      el.attrs.set(k, typeof v === "string" ? v : v.value);
    }
    if (stack.length === 0) root = el;
    else stack.at(-1)!.children.push(el);
    stack.push(el);
  });
  let skipped: { el: XmlElement; at: number } | undefined;
  parser.on("closetag", () => {
    const el = stack.pop();
    if (el && skipped?.at !== parser.position) skipped = { el, at: parser.position };
  });
  parser.on("text", (t) => {
    const top = stack.at(-1);
    if (top) top.text += t;
  });
  parser.on("cdata", (t) => {
    const top = stack.at(-1);
    if (top) top.text += t;
  });
  try {
    parser.write(text).close();
  } catch (e) {
    if (!error) {
      error = new XmlSyntaxError(
        e instanceof Error ? e.message : String(e),
        parser.line,
        parser.column,
      );
    }
  }
  if (error) throw bareAmpersand(text, error.line) ?? error;
  if (!root) throw new XmlSyntaxError("The document has no root element", 1, 1);
  return root;
}

/**
 * saxes says only "unexpected close tag" or "unclosed tag: x"; like xmllint,
 * name the close tag and the element still open, with the line it opened on:
 * `</servers>` on line 5 closes while `<server>` from line 3 is open.
 */
function nameBothTags(
  error: XmlSyntaxError,
  text: string,
  open: XmlElement | undefined,
): XmlSyntaxError {
  if (!open) return error;
  const openText = `<${open.name}> opened on line ${open.line} is not closed`;
  if (/^unexpected close tag/.test(error.message)) {
    const lineText = text.split("\n")[error.line - 1] ?? "";
    const closes = [...lineText.slice(0, error.column + 1).matchAll(/<\/([^\s>]+)\s*>/g)];
    const name = closes.at(-1)?.[1];
    if (name === undefined || name === open.name) return error;
    let outer = open.parent;
    while (outer && outer.name !== name) outer = outer.parent;
    return new XmlSyntaxError(
      outer
        ? `</${name}> closes <${name}> from line ${outer.line}, but ${openText}`
        : `</${name}> does not match <${open.name}> opened on line ${open.line}`,
      error.line,
      error.column,
    );
  }
  if (/^unclosed tag/.test(error.message)) {
    return new XmlSyntaxError(`${openText} (the file ends first)`, error.line, error.column);
  }
  return error;
}

/**
 * saxes reads an unescaped `&` (a URL's query string, the most common
 * mistake in config files) as the start of an entity and reports the error
 * only at the end of the document. Finds such an `&` on or before `line`.
 */
function bareAmpersand(text: string, line: number): XmlSyntaxError | undefined {
  // Comments, CDATA and processing instructions may contain "&": blank them, keeping newlines.
  const blanked = text.replace(
    /<!--[\s\S]*?(?:-->|$)|<!\[CDATA\[[\s\S]*?(?:\]\]>|$)|<\?[\s\S]*?(?:\?>|$)/g,
    (m) => m.replace(/[^\n]/g, " "),
  );
  const re = /&(?![A-Za-z_:][\w.:-]*;|#[0-9]+;|#x[0-9A-Fa-f]+;)/g;
  const m = re.exec(blanked);
  if (!m) return undefined;
  const before = blanked.slice(0, m.index);
  const at = before.split("\n").length;
  if (at > line) return undefined;
  const column = m.index - before.lastIndexOf("\n");
  return new XmlSyntaxError('unescaped "&" (write "&amp;" in XML)', at, column);
}

/** Returns a readable path of an element, e.g. `config/servers/server[@name="cdn"]`. */
export function elementPath(el: XmlElement): string {
  const parts: string[] = [];
  for (let e: XmlElement | undefined = el; e; e = e.parent) {
    const name = e.attrs.get("name") ?? (e.name === "rule" ? e.attrs.get("label") : undefined);
    parts.unshift(name !== undefined && e.parent ? `${e.name}[${JSON.stringify(name)}]` : e.name);
  }
  return parts.join("/");
}
