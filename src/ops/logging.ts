/**
 * Where the daemon's log lines go: standard error (through the progress
 * display when one is shown, colored on a terminal unless `NO_COLOR` is
 * set) and, with the `logFile` setting, a rotated log file.
 *
 * @module
 */
import type { Settings } from "../config/types.ts";
import { configureLog, type LogRecord } from "../log.ts";
import { RotatingFile } from "./log_file.ts";
import { LineBatch } from "../util/line_batch.ts";
import type { Terminal } from "./terminal.ts";

const encoder = new TextEncoder();

const COLORS: Record<string, string> = {
  error: "\x1b[31m",
  warn: "\x1b[33m",
  debug: "\x1b[2m",
};

/** Whether color may be used on standard error: a terminal, and `NO_COLOR` unset or empty. */
export function useColor(): boolean {
  let noColor: string | undefined;
  try {
    noColor = Deno.env.get("NO_COLOR");
  } catch {
    noColor = undefined;
  }
  return !noColor && Deno.stderr.isTerminal();
}

/** Colors the level of a text log line (JSON lines stay as they are). */
export function colorLine(line: string, record: LogRecord): string {
  const color = COLORS[record.level];
  const head = record.time + " ";
  if (!color || !line.startsWith(head)) return line;
  const end = head.length + 5;
  return `${line.slice(0, head.length)}${color}${line.slice(head.length, end)}\x1b[0m${
    line.slice(end)
  }`;
}

/** Options for {@linkcode LogOutputs}. */
export interface LogOutputsOptions {
  /** Color the level on standard error. */
  color?: boolean;
  /** Standard error writer (tests). */
  stderr?: (line: string) => void;
}

/**
 * Routes log lines to standard error, a live {@linkcode Terminal} region and
 * the rotated log file; {@linkcode LogOutputs.apply} follows the settings.
 *
 * @example
 * ```ts
 * import { LogOutputs } from "./logging.ts";
 * const outputs = new LogOutputs({ color: false });
 * outputs.close();
 * ```
 */
export class LogOutputs {
  readonly #o: LogOutputsOptions;
  #file: RotatingFile | undefined;
  #terminal: Terminal | undefined;
  // Lines for standard error and the file go out in batches, one write each
  // per turn; a warning or an error is written at once with what is before
  // it (the contract of LineBatch). A line per file per write cost a few
  // percent of a sync's CPU.
  readonly #stderrLines = new LineBatch((text) => {
    try {
      Deno.stderr.writeSync(encoder.encode(text));
    } catch {
      // A closed stderr must not take the daemon down.
    }
  });
  readonly #fileLines = new LineBatch((_text, lines) => this.#file?.writeLines(lines));

  constructor(options: LogOutputsOptions = {}) {
    this.#o = options;
    configureLog({ stderr: false, sink: (line, record) => this.#write(line, record) });
  }

  /** The open log file, if any. */
  get file(): RotatingFile | undefined {
    return this.#file;
  }

  /** Sends standard-error lines through `terminal` (above its frame) until called with undefined. */
  setTerminal(terminal: Terminal | undefined): void {
    this.#stderrLines.flush();
    this.#terminal = terminal;
  }

  /** Opens, reconfigures or closes the log file per `settings`. */
  apply(settings: Pick<Settings, "logFile" | "logMaxBytes" | "logBackups">): void {
    const want = settings.logFile;
    this.#fileLines.flush();
    if (this.#file && this.#file.path !== want) {
      this.#file.close();
      this.#file = undefined;
    }
    if (!want) return;
    const limits = { maxBytes: settings.logMaxBytes, backups: settings.logBackups };
    if (this.#file) this.#file.configure(limits);
    else {
      this.#file = new RotatingFile(want, {
        ...limits,
        onError: (e) =>
          this.#stderr(`Cannot write the log file "${want}": ${(e as Error).message}`),
      });
    }
  }

  /** Reopens the log file (after logrotate moved it). */
  reopen(): void {
    this.#fileLines.flush();
    this.#file?.reopen();
  }

  #stderr(line: string, urgent = true) {
    if (this.#o.stderr) return this.#o.stderr(line);
    if (this.#terminal) return this.#terminal.print(line);
    this.#stderrLines.add(line, urgent);
  }

  #write(line: string, record: LogRecord) {
    const urgent = record.level === "warn" || record.level === "error";
    this.#stderr(this.#o.color ? colorLine(line, record) : line, urgent);
    if (this.#file) this.#fileLines.add(line, urgent);
  }

  /** Restores plain standard-error logging and closes the file. */
  close(): void {
    configureLog({ stderr: true, sink: undefined });
    this.#stderrLines.close();
    this.#fileLines.close();
    this.#file?.close();
    this.#file = undefined;
  }
}
