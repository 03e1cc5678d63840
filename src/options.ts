/**
 * Declarative option schemas. One schema per transport or processor drives
 * config validation, secret redaction, `--help` text and the README tables.
 *
 * @module
 */

/** The type of an option's value. */
export type OptionType = "string" | "integer" | "number" | "boolean" | "enum" | "path" | "url";

/** One option of a transport or processor. */
export interface OptionSpec {
  /** Setting name as written in config.xml (the original's names where they exist). */
  name: string;
  /** One line of help. */
  help: string;
  /** Value type; `enum` needs `values`. */
  type?: OptionType;
  /** Allowed values for `enum`. */
  values?: readonly string[];
  /** Whether the option must be set. */
  required?: boolean;
  /** Default value, as text. */
  default?: string;
  /** Secret values are never printed and are masked in logs. */
  secret?: boolean;
  /** Lowest allowed value for numbers. */
  min?: number;
  /** Highest allowed value for numbers. */
  max?: number;
}

/** Option values after validation, keyed by option name; defaults filled in. */
export type OptionValues = Record<string, string>;

/**
 * Checks raw settings against a schema. Returns the settings with defaults
 * applied and a list of problems (unknown names, missing required ones,
 * malformed values), each naming the option.
 */
export function checkOptions(
  specs: readonly OptionSpec[],
  raw: Record<string, string>,
): { values: OptionValues; problems: { name: string; message: string }[] } {
  const problems: { name: string; message: string }[] = [];
  const values: OptionValues = {};
  const byName = new Map(specs.map((s) => [s.name, s]));
  for (const [name, value] of Object.entries(raw)) {
    const spec = byName.get(name);
    if (!spec) {
      const hint = closest(name, specs.map((s) => s.name));
      problems.push({
        name,
        message: `Unknown setting "${name}"${hint ? `; did you mean "${hint}"?` : ""} (valid: ${
          specs.map((s) => s.name).join(", ")
        })`,
      });
      continue;
    }
    const bad = checkValue(spec, value);
    if (bad) problems.push({ name, message: bad });
    else values[name] = value;
  }
  for (const spec of specs) {
    if (values[spec.name] !== undefined || raw[spec.name] !== undefined) continue;
    if (spec.default !== undefined) values[spec.name] = spec.default;
    else if (spec.required) {
      problems.push({ name: spec.name, message: `Missing required setting "${spec.name}"` });
    }
  }
  return { values, problems };
}

/** Returns a problem description for one value, or undefined when it is valid. */
export function checkValue(spec: OptionSpec, value: string): string | undefined {
  const v = value.trim();
  switch (spec.type ?? "string") {
    case "integer": {
      if (!/^-?\d+$/.test(v)) {
        return `Setting "${spec.name}" must be a whole number, not "${value}"`;
      }
      return checkRange(spec, Number(v));
    }
    case "number": {
      if (v === "" || !Number.isFinite(Number(v))) {
        return `Setting "${spec.name}" must be a number, not "${value}"`;
      }
      return checkRange(spec, Number(v));
    }
    case "boolean":
      if (!/^(true|false|yes|no|1|0|on|off)$/i.test(v)) {
        return `Setting "${spec.name}" must be true or false, not "${value}"`;
      }
      return undefined;
    case "enum":
      if (!spec.values?.includes(v.toLowerCase())) {
        return `Setting "${spec.name}" must be one of ${
          spec.values?.map((x) => `"${x}"`).join(", ")
        }, not "${value}"`;
      }
      return undefined;
    case "url":
      try {
        new URL(v);
      } catch {
        return `Setting "${spec.name}" must be an absolute URL, not "${value}"`;
      }
      return undefined;
    default:
      if (spec.required && v === "") return `Setting "${spec.name}" must not be empty`;
      return undefined;
  }
}

function checkRange(spec: OptionSpec, n: number): string | undefined {
  if (spec.min !== undefined && n < spec.min) {
    return `Setting "${spec.name}" must be at least ${spec.min}`;
  }
  if (spec.max !== undefined && n > spec.max) {
    return `Setting "${spec.name}" must be at most ${spec.max}`;
  }
  return undefined;
}

/** The value an option of type `T` parses to. */
export type OptionValueOf<T extends OptionType | undefined> = T extends "integer" | "number"
  ? number
  : T extends "boolean" ? boolean
  : string;

/** Whether an option always has a value (required, or with a default). */
type Always<S extends OptionSpec> = S extends { required: true } ? true
  : S extends { default: string } ? true
  : false;

/**
 * Typed settings of a schema: numbers, booleans and strings by option type;
 * `undefined` only for an option that is neither required nor defaulted.
 */
export type SettingsOf<Specs extends readonly OptionSpec[]> = {
  [S in Specs[number] as S["name"]]: Always<S> extends true ? OptionValueOf<S["type"]>
    : OptionValueOf<S["type"]> | undefined;
};

/**
 * Parses validated option values (see {@linkcode checkOptions}) once into a
 * typed settings object, so a transport reads `settings.copy` as a boolean
 * and `settings.port` as a number instead of re-reading strings. Declare the
 * schema `as const` for the precise type.
 *
 * @example
 * ```ts
 * import { type OptionSpec, parseSettings } from "./options.ts";
 * const specs = [
 *   { name: "port", type: "integer", default: "21", help: "Port" },
 *   { name: "tls", type: "boolean", help: "Use TLS" },
 * ] as const satisfies readonly OptionSpec[];
 * const s = parseSettings(specs, { port: "2121", tls: "yes" });
 * s.port; // 2121
 * s.tls; // true
 * ```
 */
export function parseSettings<const Specs extends readonly OptionSpec[]>(
  specs: Specs,
  values: OptionValues,
): SettingsOf<Specs> {
  const out: Record<string, string | number | boolean | undefined> = {};
  for (const spec of specs) {
    const raw = values[spec.name] ?? spec.default;
    out[spec.name] = raw === undefined ? undefined : parseValue(spec, raw);
  }
  return out as SettingsOf<Specs>;
}

function parseValue(spec: OptionSpec, raw: string): string | number | boolean {
  switch (spec.type ?? "string") {
    case "integer":
    case "number":
      return Number(raw.trim());
    case "boolean":
      return isTrue(raw);
    case "enum":
      return raw.trim().toLowerCase();
    default:
      return raw;
  }
}

/** Parses a boolean option value ("true", "yes", "1", "on"). */
export function isTrue(value: string | undefined): boolean {
  return value !== undefined && /^(true|yes|1|on)$/i.test(value.trim());
}

/** The closest candidate by edit distance, if it is close enough to be a typo. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = distance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}
