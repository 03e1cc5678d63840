/**
 * The command-line interface. Exit codes: 0 ok, 1 runtime failure, 2 usage
 * or configuration error.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { Command, CommanderError, Option } from "commander";
import { loadConfig } from "../config/load.ts";
import type { Config } from "../config/types.ts";
import { ConfigError, errorMessage } from "../errors.ts";
import { addSecret, configureLog, logger, redact } from "../log.ts";
import { Daemon } from "../pipeline/daemon.ts";
import { dataDirFor } from "../pipeline/paths.ts";
import { Store } from "../store/store.ts";
import { statusReport, unsynced } from "../ops/status_report.ts";
import { missingDatabase } from "../store/db.ts";
import { StateError } from "../store/integrity.ts";
import { VERSION } from "../version.ts";
import { startOps } from "../ops/mod.ts";
import "../transports/mod.ts";
import "../processors/mod.ts";
import { loadModule } from "../lazy.ts";

const encoder = new TextEncoder();

/** Writes to standard output. */
export function out(text: string): void {
  Deno.stdout.writeSync(encoder.encode(text.endsWith("\n") ? text : text + "\n"));
}

/** Writes to standard error. */
export function err(text: string): void {
  Deno.stderr.writeSync(encoder.encode(redact(text.endsWith("\n") ? text : text + "\n")));
}

/** An exit with a code, thrown from commands. */
class Exit extends Error {
  readonly code: number;
  constructor(code: number) {
    super(`exit ${code}`);
    this.code = code;
  }
}

function load(file: string): Config {
  const config = loadConfig(file);
  for (const s of config.secrets) addSecret(s);
  configureLog({ level: config.settings.logLevel, format: config.settings.logFormat });
  for (const note of config.notes ?? []) logger("config").info(note);
  return config;
}

function openStore(config: Config, dataDir: string | undefined, readOnly: boolean): Store {
  const dir = dataDirFor(config, dataDir);
  try {
    return new Store(dir, { readOnly });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof StateError) {
      err(e.message);
      throw new Exit(1);
    }
    throw e;
  }
}

function program(): Command {
  const p = new Command();
  p.name("fileconveyor")
    .description("Watch folders, process files, and sync them to CDNs and servers.")
    .version(VERSION, "-V, --version")
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: (s) => out(s),
      writeErr: (s) => err(s),
    });

  p.command("sync")
    .description("Scan and sync every source, then keep watching for changes")
    .requiredOption("-c, --config <file>", "configuration file (config.xml)")
    .option("--once", "sync until the queue is empty, then exit (1 if any file failed)")
    .option("-n, --dry-run", "show what would be synced or deleted; change nothing")
    .option("-d, --data-dir <dir>", "data directory (database, working files)")
    .option("--approve-deletes", "apply deletions held by the delete guard")
    .addOption(new Option("--log-format <format>", "log line format").choices(["text", "json"]))
    .option(
      "--http <host:port>",
      "serve the status page, /metrics and /healthz here (overrides the http setting)",
    )
    .option("--no-progress", "no live progress display of the initial sync on a terminal")
    .option(
      "--rebuild-state",
      "start from a new state database (the old one is moved aside): sync every source, then delete from the destinations what the sources no longer have",
    )
    .action(async (opts) => {
      const config = load(opts.config);
      if (opts.logFormat) configureLog({ format: opts.logFormat });
      const signals: Deno.Signal[] = Deno.build.os === "windows"
        ? ["SIGINT"]
        : ["SIGINT", "SIGTERM"];
      if (opts.rebuildState) {
        if (opts.dryRun) {
          err("--rebuild-state cannot be combined with --dry-run");
          throw new Exit(2);
        }
        const { rebuildState } = await loadModule<typeof import("../pipeline/rebuild.ts")>(
          "pipeline/rebuild.ts",
        );
        const r = await rebuildState(config, {
          dataDir: opts.dataDir,
          approveDeletes: !!opts.approveDeletes,
          attach: (d) => {
            const stop = () => stopWithin(d);
            for (const s of signals) Deno.addSignalListener(s, stop);
            return () => {
              for (const s of signals) Deno.removeSignalListener(s, stop);
            };
          },
        });
        if (r.stopped) return;
        if (opts.once) {
          if (r.summary.failed > 0 || r.problems > 0) throw new Exit(1);
          return;
        }
      }
      const daemon = await Daemon.open(config, {
        once: !!opts.once,
        dryRun: !!opts.dryRun,
        dataDir: opts.dataDir,
        approveDeletes: !!opts.approveDeletes,
      });
      const ops = await startOps(daemon, {
        configFile: opts.config,
        watching: !opts.once && !opts.dryRun,
        progress: opts.progress !== false && !opts.dryRun,
        ...(opts.http ? { http: opts.http } : {}),
        ...(opts.logFormat ? { logFormat: opts.logFormat } : {}),
      });
      const stop = () => stopWithin(daemon);
      const reload = () => void ops.reload();
      for (const s of signals) Deno.addSignalListener(s, stop);
      // SIGHUP: reload the configuration and reopen the log file.
      if (Deno.build.os !== "windows") Deno.addSignalListener("SIGHUP", reload);
      try {
        const summary = await daemon.run();
        logger("daemon").info(
          `Done: ${summary.synced} synced, ${summary.deleted} deleted, ${summary.failed} failed, ${summary.skipped} unchanged`,
        );
        if (!opts.once) return;
        const left = unsynced(daemon.dataDir);
        if (left.problems > 0) {
          logger("daemon").error(
            `${left.problems} source path(s) cannot be synced; "fileconveyor status" lists them with the reason`,
          );
        }
        if (left.failures > 0 && summary.failed === 0) {
          logger("daemon").error(
            `Files are still listed as failed or retrying; "fileconveyor status" lists them with the reason`,
          );
        }
        if (summary.failed > 0 || left.failures > 0 || left.problems > 0) throw new Exit(1);
      } finally {
        for (const s of signals) Deno.removeSignalListener(s, stop);
        if (Deno.build.os !== "windows") Deno.removeSignalListener("SIGHUP", reload);
        await ops.close();
      }
    });

  p.command("validate")
    .description("Check a configuration file; never connects, never writes")
    .requiredOption("-c, --config <file>", "configuration file")
    .action((opts) => {
      const c = load(opts.config);
      out(
        `Configuration "${c.file}" is valid: ${c.sources.length} source(s), ${c.servers.length} server(s), ${c.rules.length} rule(s).`,
      );
      for (const s of c.sources) out(`  source ${s.name}: ${s.scanPath}`);
      for (const s of c.servers) out(`  server ${s.name}: ${s.transporter}`);
      for (const r of c.rules) {
        out(
          `  rule "${r.label}" for ${r.source}: ${
            r.processors.map((x) => x.name).join(" → ") || "no processors"
          } → ${r.destinations.map((d) => `${d.server}${d.path ? "/" + d.path : ""}`).join(", ")}`,
        );
      }
    });

  p.command("status")
    .description("Show the queue, failures and what is synced where (works while the daemon runs)")
    .requiredOption("-c, --config <file>", "configuration file")
    .option("-d, --data-dir <dir>", "data directory")
    .option("--json", "machine-readable output")
    .action(async (opts) => {
      const config = load(opts.config);
      // Loaded by the commands that use them: a start of `sync` does not pay for them.
      const [{ fleetStatus }, { formatStatus }] = await Promise.all([
        loadModule<typeof import("../ops/fleet_status.ts")>("ops/fleet_status.ts"),
        loadModule<typeof import("./status.ts")>("cli/status.ts"),
      ]);
      const store = openStore(config, opts.dataDir, true);
      try {
        const report = statusReport(config, store);
        const fleet = await fleetStatus(config, store);
        if (fleet) report.fleet = fleet;
        out(opts.json ? redact(JSON.stringify(report, null, 2)) : redact(formatStatus(report)));
      } finally {
        store.close();
      }
    });

  p.command("retry")
    .description("Re-queue failed files now")
    .requiredOption("-c, --config <file>", "configuration file")
    .option("-d, --data-dir <dir>", "data directory")
    .option("--server <name>", "only files for this server")
    .action((opts) => {
      const config = load(opts.config);
      const store = openStore(config, opts.dataDir, false);
      try {
        const n = store.retryFailed(Date.now(), opts.server);
        out(`Re-queued ${n} file(s).`);
      } finally {
        store.close();
      }
    });

  p.command("approve-deletes")
    .description("Let the next scan apply deletions held by the delete guard")
    .requiredOption("-c, --config <file>", "configuration file")
    .option("-d, --data-dir <dir>", "data directory")
    .option("--source <name>", "only this source")
    .action((opts) => {
      const config = load(opts.config);
      const store = openStore(config, opts.dataDir, false);
      try {
        const n = store.approveDeletes(opts.source);
        out(n > 0 ? `Approved held deletions for ${n} source(s).` : "No deletions are held.");
      } finally {
        store.close();
      }
    });

  p.command("url")
    .description("Print the public URL(s) of a synced file")
    .argument("<path>", "source file path")
    .requiredOption("-c, --config <file>", "configuration file")
    .option("-d, --data-dir <dir>", "data directory")
    .option("--server <name>", "only this server")
    .option("--json", "machine-readable output")
    .action(async (file: string, opts) => {
      const config = load(opts.config);
      const store = openStore(config, opts.dataDir, true);
      try {
        let abs = path.resolve(file);
        try {
          abs = fs.realpathSync(abs);
        } catch {
          // A deleted file can still be looked up by its path.
        }
        let rows: { server: string; url: string }[] = store.syncedFor(abs)
          .filter((r) => !opts.server || r.server === opts.server);
        if (rows.length === 0) {
          // On a node of a fleet, any node's file: the shared record knows it.
          try {
            const { fleetUrls } = await loadModule<typeof import("../ops/fleet_status.ts")>(
              "ops/fleet_status.ts",
            );
            rows = await fleetUrls(config, abs, opts.server) ?? rows;
          } catch (e) {
            err(errorMessage(e));
          }
        }
        if (opts.json) {
          out(JSON.stringify(rows.map((r) => ({ server: r.server, url: r.url })), null, 2));
        } else for (const r of rows) out(opts.server ? r.url : `${r.server}\t${r.url}`);
        if (rows.length === 0) {
          err(`"${abs}" is not synced${opts.server ? ` to server "${opts.server}"` : ""}`);
          throw new Exit(1);
        }
      } finally {
        store.close();
      }
    });
  p.command("verify")
    .description(
      "Compare the synced-files record with each destination and the sources (works while the daemon runs)",
    )
    .requiredOption("-c, --config <file>", "configuration file")
    .option("-d, --data-dir <dir>", "data directory")
    .option("--json", "machine-readable output")
    .option("--repair", "queue missing and stale files; delete orphaned remote files")
    .option("--http-head", "also check every public URL with an HTTP HEAD request")
    .option("--http-timeout <seconds>", "timeout of one HEAD request", "10")
    .option("--http-concurrency <n>", "HEAD requests at once", "8")
    .option("--server <name>", "only this server")
    .action(async (opts) => {
      const headTimeoutMs = positive(opts.httpTimeout, "--http-timeout") * 1000;
      const headConcurrency = Math.ceil(positive(opts.httpConcurrency, "--http-concurrency"));
      const config = load(opts.config);
      const dir = dataDirFor(config, opts.dataDir);
      const missing = missingDatabase(dir);
      if (missing) {
        err(missing.message);
        throw new Exit(1);
      }
      const [{ verify }, { formatVerify }] = await Promise.all([
        loadModule<typeof import("../verify/verify.ts")>("verify/verify.ts"),
        loadModule<typeof import("./verify.ts")>("cli/verify.ts"),
      ]);
      const report = await verify(config, {
        dataDir: dir,
        repair: !!opts.repair,
        httpHead: !!opts.httpHead,
        headTimeoutMs,
        headConcurrency,
        ...(opts.server ? { server: opts.server } : {}),
      });
      out(opts.json ? redact(JSON.stringify(report, null, 2)) : formatVerify(report));
      if (!report.ok) throw new Exit(1);
    });

  return p;
}

/** The longest a stop may take: the transfers' grace (10 s) plus the clean-up budget (5 s). */
const STOP_DEADLINE_MS = 15_000;

/**
 * Stops the daemon; the daemon bounds every wait of its shutdown, and this
 * last resort ends the process should anything still hold it past the
 * deadline.
 */
function stopWithin(daemon: Daemon): void {
  if (daemon.signal.aborted) return;
  daemon.stop();
  const t = setTimeout(() => {
    err(`fileconveyor: did not stop within ${STOP_DEADLINE_MS / 1000} s; exiting`);
    Deno.exit(1);
  }, STOP_DEADLINE_MS + 2000);
  Deno.unrefTimer(t);
}

/** Parses a positive number option; a bad value is a usage error (exit 2). */
function positive(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) {
    err(`${name} must be a positive number, not "${value}"`);
    throw new Exit(2);
  }
  return n;
}

/** Runs the CLI with `args`; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const p = program();
  try {
    await p.parseAsync(args, { from: "user" });
    return 0;
  } catch (e) {
    if (e instanceof Exit) return e.code;
    if (e instanceof CommanderError) {
      if (
        e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.exitCode === 0
      ) return 0;
      return 2;
    }
    if (e instanceof ConfigError) {
      err(e.message);
      return 2;
    }
    err(`fileconveyor: ${errorMessage(e)}`);
    if (Deno.env.get("FILECONVEYOR_DEBUG")) err(String((e as Error)?.stack ?? ""));
    return 1;
  }
}
