/**
 * Operations around a running daemon: log outputs (rotated log file,
 * terminal colors), live progress on a terminal, metrics, the HTTP listener
 * (status page, `/metrics`, `/healthz`, JSON API) and configuration reload.
 * `sync` starts it next to the {@linkcode Daemon}; the daemon knows nothing
 * of it beyond the events it emits.
 *
 * @module
 */
import { loadConfig } from "../config/load.ts";
import type { Config } from "../config/types.ts";
import { ConfigError, errorMessage } from "../errors.ts";
import { configureLog, logger } from "../log.ts";
import type { Daemon } from "../pipeline/daemon.ts";
import type { OpsServer } from "./http.ts";
import { LogOutputs, useColor } from "./logging.ts";
import { Metrics } from "./metrics.ts";
import { Progress } from "./progress.ts";
import { loadModule } from "../lazy.ts";

/** Options for {@linkcode startOps}. */
export interface OpsOptions {
  /** The configuration file, read again by {@linkcode Ops.reload}. */
  configFile: string;
  /** `--http`: overrides the `http` setting. */
  http?: string;
  /** Show live progress of the initial sync (only when standard error is a terminal). */
  progress?: boolean;
  /** Whether the daemon watches its sources (not `--once`, not a dry run). */
  watching: boolean;
  /** `--log-format`: overrides the `logFormat` setting, also after a reload. */
  logFormat?: "text" | "json";
}

/** The running operations side of a daemon. */
export class Ops {
  readonly #daemon: Daemon;
  readonly #o: OpsOptions;
  readonly #log = logger("ops");
  readonly #outputs: LogOutputs;
  readonly #metrics: Metrics;
  #server: OpsServer | undefined;
  #httpAddress: string | undefined;
  #progress: Progress | undefined;

  /** Use {@linkcode startOps}. */
  constructor(daemon: Daemon, options: OpsOptions) {
    this.#daemon = daemon;
    this.#o = options;
    this.#outputs = new LogOutputs({ color: useColor() });
    this.#metrics = new Metrics(daemon);
  }

  /** The HTTP listener, when enabled. */
  get server(): OpsServer | undefined {
    return this.#server;
  }

  /** The metrics collector. */
  get metrics(): Metrics {
    return this.#metrics;
  }

  /** Opens outputs and the listener, starts progress. */
  async start(): Promise<void> {
    const settings = this.#daemon.config.settings;
    this.#outputs.apply(settings);
    await this.#listen(this.#o.http ?? settings.http);
    if (this.#o.progress && Deno.stderr.isTerminal()) {
      // The terminal display (log-update and its text-width tables) is loaded only for a terminal.
      const { Terminal } = await loadModule<typeof import("./terminal.ts")>("ops/terminal.ts");
      const terminal = new Terminal();
      this.#outputs.setTerminal(terminal);
      this.#progress = new Progress(this.#daemon, terminal, {
        onDone: () => this.#outputs.setTerminal(undefined),
      });
      this.#progress.start();
    }
    // The store closes at shutdown: stop serving first.
    this.#daemon.signal.addEventListener("abort", () => void this.#server?.close(), { once: true });
  }

  /**
   * Listens on `address` (none: stops listening). The server's modules
   * (status page, API, Prometheus text) are loaded when it first listens.
   */
  async #listen(address: string | undefined): Promise<void> {
    if (address === this.#httpAddress) return;
    const http = address ? await loadModule<typeof import("./http.ts")>("ops/http.ts") : undefined;
    // Again after the load: another reload may have changed the listener meanwhile.
    if (address === this.#httpAddress) return;
    const old = this.#server;
    const oldAddress = this.#httpAddress;
    if (old) void old.close();
    this.#server = undefined;
    this.#httpAddress = undefined;
    if (!address || !http) return;
    const start = (a: string) => {
      const server = new http.OpsServer({
        daemon: this.#daemon,
        metrics: this.#metrics,
        watching: this.#o.watching,
      });
      server.listen(a);
      this.#server = server;
      this.#httpAddress = a;
    };
    try {
      start(address);
    } catch (e) {
      if (oldAddress) {
        try {
          start(oldAddress);
        } catch {
          // Nothing listens now; the error below says why.
        }
      }
      throw e;
    }
  }

  /**
   * Reads the configuration file again and applies it (SIGHUP). An invalid
   * file is logged with its line numbers and the running configuration
   * stays. The log file is reopened either way (logrotate). Resolves to
   * whether the new configuration was applied.
   */
  async reload(): Promise<boolean> {
    this.#outputs.reopen();
    this.#log.info(`Reloading the configuration from "${this.#o.configFile}"`);
    let next: Config;
    try {
      next = loadConfig(this.#o.configFile);
      await this.#daemon.reload(next);
    } catch (e) {
      this.#metrics.reloadFailed();
      const why = e instanceof ConfigError
        ? e.issues.map((i) => `${e.file}:${i.line ?? "?"}: ${i.path}: ${i.message}`).join("; ")
        : errorMessage(e);
      this.#log.error(`Configuration not reloaded; the running one stays in effect: ${why}`);
      return false;
    }
    configureLog({
      level: next.settings.logLevel,
      format: this.#o.logFormat ?? next.settings.logFormat,
    });
    this.#outputs.apply(next.settings);
    if (this.#o.http === undefined) {
      try {
        await this.#listen(next.settings.http);
      } catch (e) {
        this.#log.error(errorMessage(e));
      }
    }
    return true;
  }

  /** Stops progress and the listener, and restores plain logging. */
  async close(): Promise<void> {
    this.#progress?.finish();
    await this.#server?.close();
    this.#server = undefined;
    this.#metrics.close();
    this.#outputs.close();
  }
}

/**
 * Starts the operations side of `daemon`: call before {@linkcode Daemon.run},
 * and {@linkcode Ops.close} after it.
 *
 * @throws {ClassifiedError} when the HTTP listener cannot bind.
 */
export async function startOps(daemon: Daemon, options: OpsOptions): Promise<Ops> {
  const ops = new Ops(daemon, options);
  try {
    await ops.start();
  } catch (e) {
    void ops.close();
    throw e;
  }
  return ops;
}
