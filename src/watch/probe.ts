/**
 * Tells whether the process's native file watcher still delivers events.
 *
 * Deno runs one OS watcher thread per process for every `Deno.watchFs`, and
 * that thread opens the path of each event it reports (to match it against
 * the watched roots). On a named pipe (FIFO) the open blocks until a writer
 * comes: one FIFO appearing in any watched tree silences every watcher of
 * the process, and a new `Deno.watchFs` call then blocks the caller too
 * (adding a watch waits for that thread). No error, no event says so.
 *
 * The probe finds out: it watches a private directory of its own and writes
 * a file there every `interval`; an event must follow within `timeout`. A
 * missing event marks the watcher stalled (listeners switch to polling); the
 * next event marks it healthy again. It is created while the thread is known
 * to run (before any source is watched) and never calls `Deno.watchFs` again.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";

/**
 * Whether Deno's watcher thread is blocked opening a FIFO right now (Linux:
 * read from /proc; elsewhere always false). Closing a `Deno.FsWatcher` waits
 * for that thread, so a blocked thread means: do not close, just abandon.
 */
export function watcherThreadBlocked(): boolean {
  if (Deno.build.os !== "linux") return false;
  try {
    for (const t of Deno.readDirSync("/proc/self/task")) {
      const dir = `/proc/self/task/${t.name}`;
      let comm: string;
      try {
        comm = Deno.readTextFileSync(`${dir}/comm`);
      } catch {
        continue; // The thread ended.
      }
      if (!comm.startsWith("notify-rs")) continue;
      try {
        if (Deno.readTextFileSync(`${dir}/wchan`).trim() === "wait_for_partner") return true;
      } catch {
        // No wchan (restricted kernel): unknown, the probe decides.
      }
    }
  } catch {
    // No /proc.
  }
  return false;
}

/** How late a deadline may fire and still judge, ms (later: the main thread was busy). */
const LATE_MS = 250;

/** Receives changes of the native watcher's health. */
export type ProbeListener = (stalled: boolean) => void;

/** Options for {@linkcode WatchProbe}. */
export interface ProbeOptions {
  /** A private directory to write the beat file in (created; removed by {@linkcode WatchProbe.close}). */
  dir: string;
  /** Milliseconds between beats. */
  interval?: number;
  /** Milliseconds a beat may wait for its event before the watcher counts as stalled. */
  timeout?: number;
}

/** Periodically checks that native watch events still arrive. */
export class WatchProbe {
  readonly #dir: string;
  readonly #interval: number;
  readonly #timeout: number;
  readonly #listeners = new Set<ProbeListener>();
  #fsw: Deno.FsWatcher | undefined;
  #timer: number | undefined;
  #deadline: number | undefined;
  #seen = true;
  #stalled = false;
  #beats = 0;
  #closed = false;

  constructor(options: ProbeOptions) {
    this.#dir = options.dir;
    this.#interval = options.interval ?? 3000;
    this.#timeout = options.timeout ?? 3000;
  }

  /** Whether the last beat went unanswered (or the watcher thread is seen blocked). */
  get stalled(): boolean {
    return this.#stalled || watcherThreadBlocked();
  }

  /** Starts watching the probe directory; throws what `Deno.watchFs` throws. */
  start(): void {
    fs.mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
    this.#fsw = Deno.watchFs(this.#dir, { recursive: false });
    void this.#drain(this.#fsw);
    this.#schedule();
  }

  /** Adds a listener; it is called on every change of health. */
  listen(fn: ProbeListener): void {
    this.#listeners.add(fn);
  }

  /** Removes a listener. */
  unlisten(fn: ProbeListener): void {
    this.#listeners.delete(fn);
  }

  /** Listeners left. */
  get listeners(): number {
    return this.#listeners.size;
  }

  async #drain(fsw: Deno.FsWatcher) {
    try {
      for await (const _ of fsw) {
        this.#seen = true;
        if (this.#deadline !== undefined) {
          clearTimeout(this.#deadline);
          this.#deadline = undefined;
        }
        if (this.#stalled) this.#set(false);
      }
    } catch {
      // Closed.
    }
  }

  #schedule() {
    if (this.#closed) return;
    this.#timer = setTimeout(() => this.#beat(), this.#interval) as unknown as number;
  }

  #beat() {
    if (this.#closed) return;
    if (!this.#stalled && watcherThreadBlocked()) this.#set(true);
    this.#seen = false;
    try {
      fs.writeFileSync(path.join(this.#dir, "beat"), String(++this.#beats));
    } catch {
      // The data directory is unwritable: no verdict this round.
      this.#seen = true;
    }
    if (!this.#seen && this.#deadline === undefined) this.#arm(this.#timeout);
    this.#schedule();
  }

  /**
   * Judges the beat `wait` ms from now. A deadline that fires late found the
   * main thread busy (a long synchronous stretch of a scan): the event may
   * be waiting to be delivered behind it, so the verdict waits for a
   * deadline the thread kept. A watcher thread blocked on a FIFO is seen
   * meanwhile by {@linkcode watcherThreadBlocked} (Linux).
   */
  #arm(wait: number) {
    const due = Date.now() + wait;
    this.#deadline = setTimeout(() => {
      this.#deadline = undefined;
      if (this.#seen || this.#stalled || this.#closed) return;
      if (Date.now() - due > LATE_MS) this.#arm(this.#timeout);
      else this.#set(true);
    }, wait) as unknown as number;
  }

  #set(stalled: boolean) {
    this.#stalled = stalled;
    for (const fn of [...this.#listeners]) fn(stalled);
  }

  /** Stops the beats and removes the probe directory. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (this.#deadline !== undefined) clearTimeout(this.#deadline);
    try {
      // Closing waits for the watcher thread: abandon the watch while that thread is blocked.
      if (!this.stalled) this.#fsw?.close();
    } catch {
      // Already closed.
    }
    fs.rmSync(this.#dir, { recursive: true, force: true });
  }
}
