/**
 * The checker every configuration section reports to: problems with their
 * line and element path, `${env:…}` and `${file:…}` expansion, and the
 * character rules shared by the sections.
 *
 * @module
 */
import * as path from "node:path";
import * as fs from "node:fs";
import type { ConfigIssue } from "../errors.ts";
import { closest } from "../options.ts";
import { elementPath, type XmlElement } from "./xml.ts";

export const NAME_RE = /^[a-zA-Z0-9_-]+$/;
export const FORBIDDEN_DIR_CHARS = /[*"/\\[\]:;|=,<>]/;
export const FORBIDDEN_PATH_CHARS = /[*"[\]:;|=,<>]/;
export const FORBIDDEN_EXT_CHARS = /[*"/\\[\]:;|=,<>.]/;

/** Collects the problems of one configuration file, each with its line and element. */
export class Checker {
  readonly issues: ConfigIssue[] = [];
  readonly secrets: string[] = [];
  readonly file: string;
  /** The configuration file's directory: relative paths resolve against it. */
  readonly dir: string;
  readonly env: (name: string) => string | undefined;

  constructor(file: string, env: (name: string) => string | undefined) {
    this.file = file;
    this.dir = path.dirname(file);
    this.env = env;
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
        out = this.env(ref.trim());
        if (out === undefined) {
          this.problem(el, `Environment variable "${ref.trim()}" is not set`);
          return "";
        }
      } else {
        const p = path.resolve(this.dir, ref.trim());
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

  dirList(el: XmlElement, value: string, what: string, forbidden: RegExp, attr?: string): string[] {
    const items = value.split(":").map((s) => s.trim()).filter((s) => s !== "");
    for (const item of items) {
      if (forbidden.test(item)) {
        this.problem(el, `Invalid ${what} "${item}": forbidden character`, attr);
      }
    }
    return items;
  }
}
