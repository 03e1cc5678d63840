/**
 * Watches one source with `Deno.watchFs` (inotify, FSEvents, …) and falls
 * back to polling when the native watcher cannot be used. Events are hints
 * fed to an {@linkcode Aggregator}; the scanner decides what changed.
 *
 * Known losses of `Deno.watchFs` are designed around: a `rescan` flag asks
 * for a full scan; a dead watcher restarts with backoff and rescans; a watch
 * limit switches the source to polling with a loud warning; a removed root
 * is waited for and rescanned when it is back.
 *
 * @module
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Source } from "../config/types.ts";
import type { Logger } from "../log.ts";
import { IgnoreMatcher } from "../filter/ignore.ts";
import type { Aggregator, EventKind } from "./aggregator.ts";
import { watcherThreadBlocked, WatchProbe } from "./probe.ts";
import { openWatches } from "./watch_plan.ts";

/** How a source is watched right now. */
export type WatchMode = "native" | "polling" | "starting" | "restarting" | "missing" | "stopped";

/** Options for {@linkcode SourceWatcher}. */
export interface WatcherOptions {
  source: Source;
  aggregator: Aggregator;
  log: Logger;
  /** `auto` tries the native watcher first; `poll` never does. */
  mode: "auto" | "poll";
  /** Seconds between polls. */
  pollInterval: number;
  /** Paths whose events are ignored (data and working directories). */
  exclude: readonly string[];
  /** Directory names whose contents are ignored at any depth. */
  ignoredDirs?: readonly string[];
  /** Runs a full scan of the source (polling, restarts, a returning root). */
  fullScan(): Promise<void>;
  /** Reports mode changes (status, metrics). */
  onMode?(mode: WatchMode, reason?: string): void;
  /**
   * Directory for the process-wide {@linkcode WatchProbe} (first watcher
   * only); a fresh temporary directory when absent.
   */
  probeDir?: string;
  /** Milliseconds between probe beats (tests shorten it). */
  probeInterval?: number;
}

/** The probe shared by every native watcher of the process (Deno has one watcher thread). */
let shared: { probe: WatchProbe; users: number } | undefined;

function acquireProbe(options: WatcherOptions): WatchProbe {
  if (!shared) {
    const dir = options.probeDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "fileconveyor-watch-"));
    const probe = new WatchProbe({
      dir,
      ...(options.probeInterval ? { interval: options.probeInterval } : {}),
    });
    probe.start();
    shared = { probe, users: 0 };
  }
  shared.users++;
  return shared.probe;
}

function releaseProbe() {
  if (!shared || --shared.users > 0) return;
  // A stalled watcher thread would block the next Deno.watchFs: keep the probe
  // (and its verdict) for the process's lifetime then.
  if (shared.probe.stalled) return;
  const probe = shared.probe;
  shared = undefined;
  probe.close();
}

const KINDS: Record<string, EventKind> = {
  create: "create",
  modify: "modify",
  access: "close",
  remove: "remove",
  rename: "rename",
};

/** The watcher of one source. */
export class SourceWatcher {
  readonly #o: WatcherOptions;
  readonly #ignore: IgnoreMatcher;
  #fsws: Deno.FsWatcher[] = [];
  /** Directories watched on their own (see {@linkcode openWatches}). */
  #spine = new Set<string>();
  /** Bumped whenever the watches are replaced: loops of older ones end quietly. */
  #gen = 0;
  #replanTimer: number | undefined;
  #stopped = false;
  #mode: WatchMode = "starting";
  #pollTimer: number | undefined;
  #rootIno = 0;
  #backoff = 1000;
  #loops: Promise<void>[] = [];
  #probe: WatchProbe | undefined;
  /** Polling because the process's native watcher thread is blocked. */
  #stallPolling = false;
  /** Bumped to end a polling loop. */
  #pollGen = 0;

  constructor(options: WatcherOptions) {
    this.#o = options;
    this.#ignore = new IgnoreMatcher({
      exclude: options.exclude,
      ...(options.ignoredDirs ? { dirs: options.ignoredDirs } : {}),
    });
  }

  /** Current mode. */
  get mode(): WatchMode {
    return this.#mode;
  }

  #setMode(mode: WatchMode, reason?: string) {
    if (this.#mode === mode) return;
    this.#mode = mode;
    this.#o.onMode?.(mode, reason);
  }

  /**
   * Starts watching. Resolves once the watch is in place (before the initial
   * scan runs, so no change between the two is missed).
   */
  start(): void {
    if (this.#o.mode === "poll") {
      this.#startPolling("polling mode configured");
      return;
    }
    this.#startNative();
  }

  readonly #onProbe = (stalled: boolean) => {
    if (this.#stopped) return;
    const name = this.#o.source.name;
    if (stalled) {
      if (this.#mode !== "native" && this.#mode !== "restarting") return;
      this.#o.log.error(
        `The OS file watcher stopped delivering events (a named pipe (FIFO) in a watched tree blocks it ` +
          `until something writes to the pipe); polling source "${name}" every ${this.#o.pollInterval} s ` +
          `until it recovers. Move named pipes, sockets and devices out of source trees.`,
      );
      this.#stallPolling = true;
      this.#startPolling("the OS watcher is blocked");
      this.#o.fullScan().catch(() => {});
    } else if (this.#stallPolling) {
      this.#stallPolling = false;
      this.#stopPolling();
      this.#o.log.info(
        `The OS file watcher delivers events again; watching source "${name}" natively`,
      );
      if (this.#fsws.length > 0) this.#setMode("native");
      else this.#startNative();
      this.#o.fullScan().catch(() => {});
    }
  };

  #startNative() {
    if (this.#stopped) return;
    if (!this.#probe) {
      try {
        this.#probe = acquireProbe(this.#o);
        this.#probe.listen(this.#onProbe);
      } catch (e) {
        this.#o.log.warn(
          `Cannot check that the OS file watcher keeps working: ${(e as Error).message}`,
        );
      }
    }
    if (this.#probe?.stalled || watcherThreadBlocked()) {
      // Deno.watchFs would wait for the blocked watcher thread (also before the probe has
      // noticed, e.g. watchers restarted by a reload): poll until it recovers.
      this.#stallPolling = true;
      this.#startPolling("the OS watcher is blocked");
      return;
    }
    const root = this.#o.source.scanPath;
    try {
      this.#rootIno = fs.statSync(root).ino;
    } catch {
      this.#waitForRoot();
      return;
    }
    const gen = ++this.#gen;
    try {
      const plan = openWatches(root);
      this.#fsws = plan.watchers;
      this.#spine = plan.spine;
      for (const dir of plan.skipped) {
        this.#o.log.warn(
          `Not watching "${dir}" of source "${this.#o.source.name}": it cannot be read; the rest of ` +
            `the source is watched, and it is watched again once readable`,
        );
      }
    } catch (e) {
      const msg = (e as Error).message;
      if (/watch limit|ENOSPC|No space left/i.test(msg)) {
        this.#o.log.error(
          `Cannot watch source "${this.#o.source.name}": the OS file watch limit is reached (${msg}). ` +
            `Falling back to polling every ${this.#o.pollInterval} s. Raise fs.inotify.max_user_watches ` +
            `(sysctl -w fs.inotify.max_user_watches=524288) to get instant change detection back.`,
        );
        this.#startPolling("watch limit reached");
        return;
      }
      this.#o.log.error(`Cannot watch source "${this.#o.source.name}": ${msg}; polling instead`);
      this.#startPolling(msg);
      return;
    }
    this.#setMode("native");
    this.#backoff = 1000;
    this.#loops = this.#fsws.map((fsw) => this.#drain(fsw, gen));
  }

  /**
   * A directory appeared or changed mode in a directory watched on its own:
   * watch the tree anew (it may be readable now, or need watching), then
   * scan, since events may be lost while the watches are replaced.
   */
  #replan() {
    if (this.#replanTimer !== undefined || this.#stopped) return;
    this.#replanTimer = setTimeout(async () => {
      if (this.#stopped || this.#mode !== "native" || !this.#closeWatch()) {
        this.#replanTimer = undefined;
        return;
      }
      this.#gen++;
      // Deno drops a closed watch's paths only once its loop ended: a new watch of the same
      // paths opened before that would lose them.
      await Promise.allSettled(this.#loops);
      this.#replanTimer = undefined;
      if (this.#stopped) return;
      this.#startNative();
      this.#o.fullScan().catch(() => {});
    }, 500) as unknown as number;
  }

  async #drain(fsw: Deno.FsWatcher, gen: number) {
    const agg = this.#o.aggregator;
    const root = this.#o.source.scanPath;
    try {
      for await (const ev of fsw) {
        if (ev.flag === "rescan") {
          this.#o.log.warn(`Watcher of source "${this.#o.source.name}" lost events; rescanning`);
          agg.rescan();
          continue;
        }
        const kind = KINDS[ev.kind] ?? "other";
        for (const p of ev.paths) {
          if (p === root && kind === "remove") {
            // The root itself went away: the watch is dead now.
            this.#o.log.error(`Source "${this.#o.source.name}" root "${root}" was removed`);
            fsw.close();
            break;
          }
          if (this.#ignored(p)) continue;
          agg.add(p, kind);
          if (this.#spine.size > 0 && this.#spine.has(path.dirname(p)) && isDirectory(p)) {
            this.#replan();
          }
        }
      }
      if (this.#stopped || gen !== this.#gen) return;
      // The iterator ended without stop(): the root vanished or the watch died.
      this.#restart("the watcher stopped");
    } catch (e) {
      if (this.#stopped || gen !== this.#gen) return;
      const msg = (e as Error).message;
      if (/watch limit|ENOSPC|No space left/i.test(msg)) {
        this.#o.log.error(
          `The watcher of source "${this.#o.source.name}" hit the OS file watch limit (${msg}); ` +
            `polling every ${this.#o.pollInterval} s instead. Raise fs.inotify.max_user_watches.`,
        );
        this.#startPolling("watch limit reached");
        this.#o.fullScan().catch(() => {});
        return;
      }
      this.#restart(msg);
    }
  }

  #ignored(p: string): boolean {
    return this.#ignore.isIgnoredPath(this.#o.source.scanPath, p);
  }

  #restart(reason: string) {
    if (this.#stopped) return;
    // The other watches of this plan end too, quietly.
    this.#gen++;
    this.#closeWatch();
    this.#fsws = [];
    let rootOk = false;
    try {
      rootOk = fs.statSync(this.#o.source.scanPath).isDirectory();
    } catch {
      rootOk = false;
    }
    if (!rootOk) {
      this.#waitForRoot();
      return;
    }
    this.#setMode("restarting", reason);
    const delay = this.#backoff;
    this.#backoff = Math.min(this.#backoff * 2, 60_000);
    this.#o.log.warn(
      `Watcher of source "${this.#o.source.name}" stopped (${reason}); restarting in ${delay} ms`,
    );
    this.#pollTimer = setTimeout(() => {
      this.#startNative();
      this.#o.fullScan().catch(() => {});
    }, delay) as unknown as number;
  }

  #waitForRoot() {
    this.#setMode("missing", "source directory missing");
    this.#o.log.error(
      `Source "${this.#o.source.name}" ("${this.#o.source.scanPath}") is missing; nothing is deleted; waiting for it to come back`,
    );
    const check = () => {
      if (this.#stopped) return;
      try {
        if (fs.statSync(this.#o.source.scanPath).isDirectory()) {
          this.#o.log.info(`Source "${this.#o.source.name}" is back; rescanning`);
          if (this.#o.mode === "poll") this.#startPolling("polling mode configured");
          else this.#startNative();
          this.#o.fullScan().catch(() => {});
          return;
        }
      } catch {
        // Still missing.
      }
      this.#pollTimer = setTimeout(check, 2000) as unknown as number;
    };
    this.#pollTimer = setTimeout(check, 2000) as unknown as number;
  }

  #stopPolling() {
    this.#pollGen++;
    if (this.#pollTimer !== undefined) clearTimeout(this.#pollTimer);
    this.#pollTimer = undefined;
  }

  #startPolling(reason: string) {
    this.#stopPolling();
    this.#setMode("polling", reason);
    const gen = this.#pollGen;
    const tick = async () => {
      if (this.#stopped || gen !== this.#pollGen) return;
      try {
        await this.#o.fullScan();
      } catch (e) {
        this.#o.log.error(
          `Polling scan of source "${this.#o.source.name}" failed: ${(e as Error).message}`,
        );
      }
      if (!this.#stopped && gen === this.#pollGen) {
        this.#pollTimer = setTimeout(tick, this.#o.pollInterval * 1000) as unknown as number;
      }
    };
    this.#pollTimer = setTimeout(tick, this.#o.pollInterval * 1000) as unknown as number;
  }

  /** Checks that the root is still the directory being watched (called periodically). */
  checkRoot(): void {
    if (this.#mode !== "native") return;
    try {
      const st = fs.statSync(this.#o.source.scanPath);
      if (st.ino === this.#rootIno) return;
      this.#o.log.warn(`Source "${this.#o.source.name}" root was replaced; re-watching`);
    } catch {
      // Gone: restart handles the wait.
    }
    this.#closeWatch();
  }

  /**
   * Closes the native watch unless the watcher thread is blocked (closing
   * would wait for it forever); returns whether it was closed.
   */
  #closeWatch(): boolean {
    if (this.#probe?.stalled || watcherThreadBlocked()) return false;
    for (const fsw of this.#fsws) {
      try {
        fsw.close();
      } catch {
        // Already closed.
      }
    }
    return true;
  }

  /** Stops watching. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#setMode("stopped");
    this.#stopPolling();
    if (this.#replanTimer !== undefined) clearTimeout(this.#replanTimer);
    // An abandoned watch ends with the process.
    const closed = this.#closeWatch();
    if (this.#probe) {
      this.#probe.unlisten(this.#onProbe);
      this.#probe = undefined;
      releaseProbe();
    }
    if (closed) await Promise.allSettled(this.#loops);
  }
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}
