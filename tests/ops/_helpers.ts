/**
 * Helpers for the operations tests: the daemon's HTTP address, a run under a
 * pseudo-terminal, and a Chromium that the test installs when missing.
 *
 * @module
 */
import * as fs from "node:fs";
import { ENTRY, type Running } from "../_harness.ts";

/** Waits for the listener's log line and returns its base URL. */
export async function httpBase(run: Running): Promise<string> {
  const re = /on (http:\/\/[^\s/]+)\//;
  await run.waitFor(re);
  return re.exec(run.log())![1]!;
}

/** GETs a path; returns status, headers and text. */
export async function get(
  base: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; text: string }> {
  const r = await fetch(base + path, { headers });
  return { status: r.status, headers: r.headers, text: await r.text() };
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Result of a run under a pseudo-terminal. */
export interface PtyResult {
  code: number;
  /** Everything the terminal showed (stdout and stderr together). */
  output: string;
}

/**
 * Variables of the test runner's own environment that change what the CLI
 * shows on a terminal (colors, log level and format): never passed on, so
 * that only the test decides (`NO_COLOR=1 deno task test` must not turn the
 * colored run plain).
 */
const TERMINAL_VARS = [
  "NO_COLOR",
  "FORCE_COLOR",
  "FILECONVEYOR_LOG",
  "FILECONVEYOR_LOG_FORMAT",
  "FILECONVEYOR_DEBUG",
];

/**
 * Runs the CLI under a pseudo-terminal with `script` (util-linux), so
 * standard error is a terminal, as when an operator starts it by hand. The
 * child gets the runner's environment without {@linkcode TERMINAL_VARS},
 * `TERM=xterm-256color`, and `env`.
 */
export async function pty(args: string[], env: Record<string, string> = {}): Promise<PtyResult> {
  const cmd = [Deno.execPath(), "run", "-A", ENTRY, ...args].map(shellQuote).join(" ");
  const inherited = Deno.env.toObject();
  for (const name of TERMINAL_VARS) delete inherited[name];
  const out = await new Deno.Command("script", {
    args: ["-qec", cmd, "/dev/null"],
    clearEnv: true,
    env: { ...inherited, TERM: "xterm-256color", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, output: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

const CHROMIUM = "/usr/bin/chromium";

/** Installs Debian's chromium when it is missing; throws when that fails (never skips). */
export async function ensureChromium(): Promise<string> {
  if (fs.existsSync(CHROMIUM)) return CHROMIUM;
  const run = async (args: string[]) => {
    const r = await new Deno.Command("apt-get", {
      args,
      env: { DEBIAN_FRONTEND: "noninteractive" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    return r;
  };
  let r = await run(["install", "-y", "-q", "chromium"]);
  if (!r.success) {
    await run(["update", "-q"]);
    r = await run(["install", "-y", "-q", "chromium"]);
  }
  if (!r.success || !fs.existsSync(CHROMIUM)) {
    throw new Error(
      `Cannot install chromium with apt-get (exit ${r.code}): ${
        new TextDecoder().decode(r.stderr).slice(-2000)
      }`,
    );
  }
  return CHROMIUM;
}

/** Arguments for a headless, quiet Chromium. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Waits until `check` resolves to "" (done) or times out with its last answer. */
export async function until(
  check: () => string | Promise<string>,
  timeoutMs = 20_000,
  what = "condition",
): Promise<void> {
  const t0 = Date.now();
  let last = "";
  while (Date.now() - t0 < timeoutMs) {
    last = await check();
    if (last === "") return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`Timed out waiting for ${what}: ${last}`);
}

/** GETs a path over a raw connection with a chosen Host header (fetch cannot set it); returns the status. */
export async function getWithHost(base: string, path: string, host: string): Promise<number> {
  const u = new URL(base);
  const conn = await Deno.connect({ hostname: u.hostname, port: Number(u.port) });
  try {
    await conn.write(
      new TextEncoder().encode(
        `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
      ),
    );
    const buf = new Uint8Array(4096);
    let text = "";
    while (!text.includes("\r\n")) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    return Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
  } finally {
    conn.close();
  }
}
