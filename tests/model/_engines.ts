/**
 * Ways to drive the engine in the model-based test, all through public
 * surfaces: the in-process `Daemon` API of mod.ts (fast), or the CLI as a
 * subprocess (`sync`, `sync --once`, SIGTERM, SIGKILL) without root's
 * permission override, so that file modes apply to it. Failures are read
 * from `status --json`, what users and scripts read.
 *
 * @module
 */
import { Daemon, loadConfig, main } from "../../mod.ts";
import { configureLog } from "../../src/log.ts";
import { unsynced } from "../../src/ops/status_report.ts";
import { NO_DAC, type Proc, run, start } from "../reliability/_util.ts";

/** A failure as `status --json` lists it. */
export interface Failure {
  file: string;
  error: string | null;
}

/** What a sequence needs from the engine. */
export interface Engine {
  readonly running: boolean;
  start(): Promise<void>;
  /** Clean stop; returns a problem to report, or "". */
  stop(): Promise<string>;
  /** SIGKILL, then start again. */
  kill9(): Promise<void>;
  /** One `--once` pass (the daemon is stopped): whether it reported a failure (exit 1), or a problem. */
  once(): Promise<{ failed: boolean; problem: string }>;
  /** Best effort: nothing queued or running right now. */
  idle(): Promise<boolean>;
  failures(): Promise<Failure[]>;
  /** The last lines of the daemon's log. */
  log(): string;
  close(): Promise<void>;
}

/**
 * Runs the CLI's `main` in this process with its standard output captured:
 * the same code path as the command, without a second runtime's start-up
 * for every check. One at a time (standard output is process-wide).
 */
export async function runMain(args: string[]): Promise<{ code: number; out: string }> {
  const turn = mainTurn;
  let done!: () => void;
  mainTurn = new Promise<void>((r) => (done = r));
  await turn;
  const chunks: Uint8Array[] = [];
  const stdout = Deno.stdout as { writeSync(b: Uint8Array): number };
  const original = stdout.writeSync;
  stdout.writeSync = (b: Uint8Array) => {
    chunks.push(b.slice());
    return b.length;
  };
  try {
    const code = await main(args);
    const out = new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
    return { code, out };
  } finally {
    stdout.writeSync = original;
    done();
  }
}

let mainTurn: Promise<void> = Promise.resolve();

/**
 * What `status --json` reports as not synced: its `failures`, and its
 * `problems` (source paths that cannot be synced, with the reason) as
 * failures of that path.
 */
async function statusFailures(config: string): Promise<Failure[]> {
  const r = await runMain(["status", "--config", config, "--json"]);
  if (r.code !== 0) throw new Error(`status --json exited ${r.code}: ${r.out.slice(-2000)}`);
  const s = JSON.parse(r.out) as {
    failures: Failure[];
    problems: { path: string; reason: string }[];
  };
  return [...s.failures, ...s.problems.map((p) => ({ file: p.path, error: p.reason }))];
}

/** `verify --repair`; returns a problem to report, or "". */
export async function repair(config: string): Promise<string> {
  const r = await runMain(["verify", "--config", config, "--repair"]);
  return r.code === 0 || r.code === 1
    ? ""
    : `verify --repair exited ${r.code}: ${r.out.slice(-2000)}`;
}

/** Resolves with the promise's value, or with `undefined` after `ms` (the timer is cleared either way). */
async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const lines: string[] = [];
let captured = false;

/** Keeps the in-process daemon's log in memory (the last 300 lines) instead of on stderr. */
function captureLog() {
  if (captured) return;
  captured = true;
  configureLog({
    stderr: false,
    sink: (line) => {
      lines.push(line);
      if (lines.length > 300) lines.splice(0, lines.length - 300);
    },
  });
}

/** The `Daemon` in this process. */
export class InProcessEngine implements Engine {
  readonly #config: string;
  #daemon: Daemon | undefined;
  #run: Promise<unknown> | undefined;
  #error: unknown;

  constructor(config: string) {
    this.#config = config;
    captureLog();
    lines.length = 0;
  }

  get running(): boolean {
    return this.#daemon !== undefined;
  }

  async start(): Promise<void> {
    const d = await Daemon.open(loadConfig(this.#config));
    let scanned!: () => void;
    const initial = new Promise<void>((r) => (scanned = r));
    d.on((e) => {
      if (e.type === "initial-scan-done") scanned();
    });
    this.#daemon = d;
    this.#run = d.run().catch((e) => {
      this.#error = e;
      scanned();
    });
    if (await within(initial.then(() => true), 30_000) === undefined) {
      throw new Error("the daemon did not finish its initial scan within 30 s (hung?)");
    }
    if (this.#error) throw this.#error;
  }

  async stop(): Promise<string> {
    const d = this.#daemon;
    if (!d) return "";
    this.#daemon = undefined;
    d.stop();
    if (await within(this.#run!.then(() => true), 20_000) === undefined) {
      return "Daemon.stop() did not end run() within 20 s";
    }
    return this.#error ? `run() failed: ${this.#error}` : "";
  }

  kill9(): Promise<void> {
    throw new Error("kill -9 needs the CLI engine");
  }

  async once(): Promise<{ failed: boolean; problem: string }> {
    const d = await Daemon.open(loadConfig(this.#config), { once: true });
    const s = await within(d.run(), 30_000);
    if (!s) {
      d.stop();
      return { failed: true, problem: "a --once run did not finish within 30 s" };
    }
    // The exit decision of `sync --once`.
    const left = unsynced(d.dataDir);
    return { failed: s.failed > 0 || left.failures > 0 || left.problems > 0, problem: "" };
  }

  async idle(): Promise<boolean> {
    const d = this.#daemon;
    if (!d) return true;
    return await within(d.waitIdle().then(() => true), 50) ?? false;
  }

  failures(): Promise<Failure[]> {
    return statusFailures(this.#config);
  }

  log(): string {
    return lines.slice(-60).join("\n");
  }

  async close(): Promise<void> {
    await this.stop();
  }
}

/** The CLI as a subprocess, without CAP_DAC_OVERRIDE (file modes apply to it). */
export class CliEngine implements Engine {
  readonly #config: string;
  #proc: Proc | undefined;
  #log = "";

  constructor(config: string) {
    this.#config = config;
  }

  get running(): boolean {
    return this.#proc !== undefined;
  }

  #keep(text: string) {
    this.#log = (this.#log + text).slice(-20_000);
  }

  async start(): Promise<void> {
    const p = start(["sync", "--config", this.#config, "--no-progress"], { prefix: NO_DAC });
    this.#proc = p;
    try {
      await p.waitFor("Initial scan done", 60_000);
    } catch (e) {
      this.#keep(p.log());
      await p.kill();
      this.#proc = undefined;
      throw e;
    }
  }

  async stop(): Promise<string> {
    const p = this.#proc;
    if (!p) return "";
    this.#proc = undefined;
    const code = await within(p.stop(), 30_000);
    if (code === undefined) {
      await p.kill();
      this.#keep(p.log());
      return "the daemon did not stop within 30 s of SIGTERM";
    }
    this.#keep(p.log());
    return code === 0 ? "" : `the daemon exited ${code} on SIGTERM`;
  }

  async kill9(): Promise<void> {
    const p = this.#proc;
    if (p) {
      await p.kill();
      this.#keep(p.log());
    }
    this.#proc = undefined;
    await this.start();
  }

  async once(): Promise<{ failed: boolean; problem: string }> {
    const r = await run(["sync", "--once", "--config", this.#config], {
      prefix: NO_DAC,
      timeoutMs: 60_000,
    });
    this.#keep(r.stderr);
    if (r.code === 0 || r.code === 1) return { failed: r.code === 1, problem: "" };
    return { failed: true, problem: `sync --once exited ${r.code} (hung or crashed)` };
  }

  idle(): Promise<boolean> {
    return Promise.resolve(true);
  }

  failures(): Promise<Failure[]> {
    return statusFailures(this.#config);
  }

  log(): string {
    const text = this.#log + (this.#proc?.log() ?? "");
    return text.split("\n").slice(-60).join("\n");
  }

  async close(): Promise<void> {
    const p = this.#proc;
    this.#proc = undefined;
    await p?.kill();
  }
}
