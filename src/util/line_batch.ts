/**
 * Lines gathered and written together: one write per run of the microtask
 * queue instead of one per line. A busy sync logs a line per file; a write system
 * call per line cost several percent of its CPU.
 *
 * Contract: a line added with `urgent` (a warning or an error) is written
 * before {@linkcode LineBatch.add} returns, together with every line added
 * before it, so the order is kept and no warning or error waits. The other
 * lines are written once the code running now and the promise reactions
 * queued before the first of them are done (a microtask): the lines the jobs
 * of one group commit log go out together, and a line is out before the next
 * timer, I/O callback or awaited I/O of the process (a reader who sees a
 * file arrive finds the lines logged before it was written), when the process
 * exits (`Deno.exit`, the end of the program: the `unload` event), and when
 * an uncaught error or an unhandled rejection is about to end it. Only a
 * kill that no code sees (SIGKILL, a power cut) can lose them: at most the
 * informational lines of the last turn.
 *
 * @module
 */
const live = new Set<LineBatch>();
let hooked = false;

function flushAll(): void {
  for (const b of live) b.flush();
}

function hook(): void {
  if (hooked) return;
  hooked = true;
  globalThis.addEventListener("unload", flushAll);
  // Listeners see the error before the runtime reports it and exits; they do
  // not handle it (no preventDefault), so the process still fails as before.
  globalThis.addEventListener("error", flushAll);
  globalThis.addEventListener("unhandledrejection", flushAll);
}

/**
 * Gathers lines for one writer; see the module's contract.
 *
 * @example
 * ```ts
 * import { LineBatch } from "./line_batch.ts";
 * const out: string[] = [];
 * const batch = new LineBatch((text) => out.push(text));
 * batch.add("one");
 * batch.add("two", true); // written at once, with "one" before it
 * batch.close();
 * ```
 */
export class LineBatch {
  readonly #write: (text: string, lines: string[]) => void;
  #pending: string[] = [];
  #queued = false;

  /**
   * `write` receives the pending lines, joined with a newline after each,
   * and as an array; it must not throw.
   */
  constructor(write: (text: string, lines: string[]) => void) {
    this.#write = write;
    hook();
    live.add(this);
  }

  /** Adds a line (without its newline); `urgent` writes it and all before it now. */
  add(line: string, urgent = false): void {
    this.#pending.push(line);
    if (urgent) this.flush();
    else if (!this.#queued) {
      this.#queued = true;
      queueMicrotask(() => this.flush());
    }
  }

  /** Writes the pending lines now. */
  flush(): void {
    this.#queued = false;
    if (this.#pending.length === 0) return;
    const lines = this.#pending;
    this.#pending = [];
    this.#write(lines.join("\n") + "\n", lines);
  }

  /** Writes what is pending and stops following the process's exit. */
  close(): void {
    this.flush();
    live.delete(this);
  }
}
