/**
 * A live region at the bottom of the terminal (the progress display) with
 * log lines scrolling above it. Redrawing is done by `log-update`.
 *
 * @module
 */
import { createLogUpdate } from "log-update";

const encoder = new TextEncoder();

/** Where the terminal output goes (standard error by default; tests pass their own). */
export interface TerminalStream {
  write(text: string): void;
  /** Columns and rows; 0 or undefined falls back to 80×24. */
  size?(): { columns: number; rows: number };
}

function stderrStream(): TerminalStream {
  return {
    write(text) {
      try {
        Deno.stderr.writeSync(encoder.encode(text));
      } catch {
        // A closed terminal must not take the daemon down.
      }
    },
    size() {
      try {
        return Deno.consoleSize();
      } catch {
        return { columns: 80, rows: 24 };
      }
    },
  };
}

/**
 * Log lines and one redrawn frame below them.
 *
 * @example
 * ```ts
 * import { Terminal } from "./terminal.ts";
 * let out = "";
 * const t = new Terminal({ write: (s) => (out += s) });
 * t.frame("42 % done");
 * t.print("a log line");
 * t.done("finished");
 * ```
 */
export class Terminal {
  readonly #stream: TerminalStream;
  readonly #render: ReturnType<typeof createLogUpdate>;
  #frame = "";

  constructor(stream: TerminalStream = stderrStream()) {
    this.#stream = stream;
    const size = () => {
      const s = stream.size?.();
      return { columns: s?.columns || 80, rows: s?.rows || 24 };
    };
    // log-update needs a Node-like stream; the cursor stays visible (hiding it
    // would install exit handlers that fight our signal handling).
    const adapter = {
      isTTY: true,
      write: (text: string) => {
        stream.write(text);
        return true;
      },
      get columns() {
        return size().columns;
      },
      get rows() {
        return size().rows;
      },
    };
    // deno-lint-ignore no-explicit-any
    this.#render = createLogUpdate(adapter as any, { showCursor: true });
  }

  /** Whether a frame is shown. */
  get active(): boolean {
    return this.#frame !== "";
  }

  /** Shows (or replaces) the frame. */
  frame(text: string): void {
    this.#frame = text;
    this.#render(text);
  }

  /** Writes a line above the frame. */
  print(line: string): void {
    if (this.#frame === "") {
      this.#stream.write(line.endsWith("\n") ? line : line + "\n");
      return;
    }
    this.#render.clear();
    this.#stream.write(line.endsWith("\n") ? line : line + "\n");
    this.#render(this.#frame);
  }

  /** Removes the frame, leaving `last` (if any) as an ordinary line. */
  done(last?: string): void {
    if (this.#frame !== "") this.#render.clear();
    this.#frame = "";
    this.#render.done();
    if (last) this.#stream.write(last.endsWith("\n") ? last : last + "\n");
  }
}
