/**
 * A thin logger: one line per event, with a component and a subject.
 *
 * Level from `FILECONVEYOR_LOG` (debug|info|warn|error), per-component debug
 * from `FILECONVEYOR_DEBUG` (comma-separated component prefixes, `*` for all),
 * JSON lines with `FILECONVEYOR_LOG_FORMAT=json` or {@linkcode configureLog}.
 * Every registered secret is replaced by `***` before anything is written.
 *
 * @module
 */
import { LineBatch } from "./util/line_batch.ts";

/** Log levels, lowest first. */
export type Level = "debug" | "info" | "warn" | "error";

const LEVELS: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Where log records go and how they look. */
export interface LogOptions {
  /** Lowest level written. */
  level?: Level;
  /** `text` (default) or `json` lines. */
  format?: "text" | "json";
  /** Component prefixes logged at debug level regardless of `level`. */
  debug?: string[];
  /** Extra sink, e.g. a rotating log file. Receives finished lines. */
  sink?: (line: string, record: LogRecord) => void;
  /** Write to standard error too (default true). */
  stderr?: boolean;
}

/** One log event. */
export interface LogRecord {
  time: string;
  level: Level;
  component: string;
  message: string;
  fields?: Record<string, unknown>;
}

const state: Required<Omit<LogOptions, "sink">> & { sink?: LogOptions["sink"] } = {
  level: envLevel() ?? "info",
  format: Deno.env.get("FILECONVEYOR_LOG_FORMAT") === "json" ? "json" : "text",
  debug: (Deno.env.get("FILECONVEYOR_DEBUG") ?? "").split(",").map((s) => s.trim()).filter(
    Boolean,
  ),
  stderr: true,
};

const secrets = new Set<string>();
const listeners = new Set<(record: LogRecord) => void>();
const encoder = new TextEncoder();
// Standard error takes lines in batches (one write per turn); warnings and
// errors are written at once (the contract of LineBatch).
const stderrLines = new LineBatch((text) => {
  try {
    Deno.stderr.writeSync(encoder.encode(text));
  } catch {
    // A closed stderr must not take the daemon down.
  }
});

function envLevel(): Level | undefined {
  try {
    const v = Deno.env.get("FILECONVEYOR_LOG");
    return v && v in LEVELS ? v as Level : undefined;
  } catch {
    return undefined;
  }
}

/** Changes logging options; unset options keep their value. */
export function configureLog(options: LogOptions): void {
  stderrLines.flush();
  if (options.level && !envLevel()) state.level = options.level;
  if (options.format) state.format = options.format;
  if (options.debug) state.debug = [...state.debug, ...options.debug];
  if (options.stderr !== undefined) state.stderr = options.stderr;
  if ("sink" in options) state.sink = options.sink;
}

/** Registers a secret: it is masked in every log line and in {@linkcode redact}. */
export function addSecret(value: string): void {
  if (value.length >= 3) secrets.add(value);
}

/** Replaces every registered secret in `text` by `***`. */
export function redact(text: string): string {
  let out = text;
  for (const s of secrets) {
    if (out.includes(s)) out = out.split(s).join("***");
  }
  return out;
}

/** Subscribes to every record at or above the configured level; returns an unsubscribe function. */
export function onLog(listener: (record: LogRecord) => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function enabled(level: Level, component: string): boolean {
  if (LEVELS[level] >= LEVELS[state.level]) return true;
  if (level !== "debug") return false;
  return state.debug.some((d) => d === "*" || component.startsWith(d));
}

function write(level: Level, component: string, message: string, fields?: Record<string, unknown>) {
  if (!enabled(level, component)) return;
  const record: LogRecord = {
    time: new Date().toISOString(),
    level,
    component,
    message: redact(message),
  };
  if (fields && Object.keys(fields).length > 0) {
    record.fields = JSON.parse(redact(JSON.stringify(fields)));
  }
  const line = state.format === "json"
    ? JSON.stringify(record)
    : `${record.time} ${level.toUpperCase().padEnd(5)} [${component}] ${record.message}${
      record.fields ? " " + formatFields(record.fields) : ""
    }`;
  if (state.stderr) stderrLines.add(line, LEVELS[level] >= LEVELS.warn);
  state.sink?.(line, record);
  for (const l of listeners) l(record);
}

function formatFields(fields: Record<string, unknown>): string {
  return Object.entries(fields).map(([k, v]) =>
    `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`
  )
    .join(" ");
}

/** A logger bound to a component such as `watch` or `sftp:cdn`. */
export interface Logger {
  readonly component: string;
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  /** A logger for a sub-component, e.g. `pipeline` → `pipeline:cdn`. */
  child(name: string): Logger;
  /** Whether debug records of this component are written. */
  readonly debugEnabled: boolean;
  /** Whether records of `level` from this component are written (skip building unwritten lines). */
  enabled(level: Level): boolean;
}

/**
 * Returns a logger for a component.
 *
 * @example
 * ```ts
 * import { logger } from "./log.ts";
 * const log = logger("sftp:cdn");
 * log.info('uploaded "css/a.css"', { bytes: 2100, ms: 14 });
 * ```
 */
export function logger(component: string): Logger {
  return {
    component,
    debug: (m, f) => write("debug", component, m, f),
    info: (m, f) => write("info", component, m, f),
    warn: (m, f) => write("warn", component, m, f),
    error: (m, f) => write("error", component, m, f),
    child: (name) => logger(`${component}:${name}`),
    get debugEnabled() {
      return enabled("debug", component);
    },
    enabled: (level) => enabled(level, component),
  };
}
