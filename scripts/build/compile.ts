/**
 * Builds native executables from the single-file bundle with `deno compile`.
 *
 * ```sh
 * deno task compile                                    # every target
 * deno task compile --target x86_64-unknown-linux-gnu  # one (repeatable)
 * deno task compile --out dist/bin                     # output folder (default)
 * deno task compile --bundle fileconveyor.js           # this bundle, as is (release builds)
 * ```
 *
 * Output: `dist/bin/fileconveyor-<target>` (`.exe` on Windows) and
 * `dist/bin/SHA256SUMS` (for `sha256sum -c`) listing the binaries built by
 * this run. Exit status 0 when every requested target was built, 1 when any
 * failed (the others are still built), 2 on a usage error.
 *
 * Each target is compiled from a copy of `dist/fileconveyor.js` alone in a
 * fresh temporary folder with `--no-config --no-npm --no-remote`: no
 * `deno.json`, `package.json` or `node_modules` can be picked up and embedded
 * (compile embeds a parent folder's `node_modules` when it finds a
 * `package.json`). The bundle is rebuilt first when it is stale.
 *
 * The executables get the daemon's permission set (`PERMISSIONS` in
 * `scripts/build/bundle.ts`): read, write, net, env, sys, run and ffi (only for
 * the system's OpenSSL, see there), never remote imports, and never a
 * prompt.
 *
 * The runtime: `deno compile` copies a `denort` executable for the target,
 * which it downloads from `https://dl.deno.land/release/v<version>/denort-<target>.zip`
 * into `$DENO_DIR/dl/release/v<version>/` the first time. Without internet
 * that fails; this script then says which file to provide:
 *
 * - put the zip (downloaded elsewhere) at
 *   `$DENO_DIR/dl/release/v<version>/denort-<target>.zip`: compile uses it
 *   without network; or
 * - set `DENORT_BIN=/path/to/denort` (an unzipped denort *for that target*,
 *   of the same Deno version) and build that one target. The full `deno`
 *   binary is not a substitute: the result only opens a REPL.
 *
 * @module
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { denoCacheDir, ensureBundle, PERMISSIONS, ROOT } from "./bundle.ts";

/** Targets released as executables, in `deno compile --target` spelling. */
export const TARGETS: readonly string[] = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
];

/** The released file name of the executable for `target`. */
export function binaryName(target: string): string {
  return `fileconveyor-${target}${target.includes("windows") ? ".exe" : ""}`;
}

/** Outcome of one target. */
export interface TargetResult {
  target: string;
  /** `ok`, `no-runtime` (denort unavailable), or `failed` (anything else). */
  status: "ok" | "no-runtime" | "failed";
  file?: string;
  size?: number;
  sha256?: string;
  /** What went wrong, with the remedy for `no-runtime`. */
  message?: string;
}

/** Where `deno compile` looks for the cached runtime of `target`. */
export function cachedRuntimePath(denoDir: string, target: string): string {
  return path.join(denoDir, "dl", "release", `v${Deno.version.deno}`, `denort-${target}.zip`);
}

/** Compiles one target from `bundle` into `outDir`. */
export async function compileTarget(
  bundle: string,
  target: string,
  options: { outDir: string; denoDir: string },
): Promise<TargetResult> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "fc-compile-"));
  try {
    fs.copyFileSync(bundle, path.join(work, "fileconveyor.js"));
    const name = binaryName(target);
    const built = path.join(work, "out", name);
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "compile",
        "--no-config",
        "--no-npm",
        "--no-remote",
        "--no-lock",
        "--no-check",
        "--target",
        target,
        "--output",
        built,
        ...PERMISSIONS,
        "fileconveyor.js",
      ],
      cwd: work,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const log = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
    if (!out.success) {
      if (/dl\.deno\.land|denort|base binary/i.test(log)) {
        return { target, status: "no-runtime", message: noRuntime(target, options.denoDir, log) };
      }
      return { target, status: "failed", message: `deno compile failed:\n${log.trim()}` };
    }
    fs.mkdirSync(options.outDir, { recursive: true });
    const file = path.join(options.outDir, name);
    fs.copyFileSync(built, file);
    if (Deno.build.os !== "windows") fs.chmodSync(file, 0o755);
    const bytes = fs.readFileSync(file);
    return {
      target,
      status: "ok",
      file,
      size: bytes.length,
      sha256: crypto.createHash("sha256").update(bytes).digest("hex"),
    };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

function noRuntime(target: string, denoDir: string, log: string): string {
  const version = Deno.version.deno;
  const url = `https://dl.deno.land/release/v${version}/denort-${target}.zip`;
  // deno prints the error chain as "0: …", "1: …"; the last link is the root cause.
  const chain = log.split("Stack backtrace:")[0]!.split("\n").map((l) => l.trim())
    .filter((l) => /^\d+: /.test(l));
  const cause = chain.at(-1)?.replace(/^\d+: /, "") ?? "";
  return [
    `Cannot compile for ${target}: the Deno runtime for that target (denort) is not available`,
    `and could not be downloaded from ${url}${cause ? `\n  (${cause})` : ""}.`,
    "Provide it offline in either way, then run this again:",
    `  - download ${url} on a machine with internet and copy it, unchanged, to`,
    `      ${cachedRuntimePath(denoDir, target)}`,
    `  - or unzip it and run: DENORT_BIN=/path/to/denort deno task compile --target ${target}`,
    `The runtime must be Deno ${version}'s; the full deno binary does not work as DENORT_BIN.`,
  ].join("\n");
}

/** Runs the host's executable once (`--version`); returns an error message or undefined. */
async function smokeTest(file: string): Promise<string | undefined> {
  const out = await new Deno.Command(file, {
    args: ["--version"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (out.success && /^\d+\.\d+\.\d+/.test(text)) return undefined;
  return `${path.basename(file)} --version failed (exit ${out.code}): ${
    (text + "\n" + new TextDecoder().decode(out.stderr)).trim().slice(0, 800)
  }`;
}

const encoder = new TextEncoder();

function say(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      target: { type: "string", short: "t", multiple: true },
      out: { type: "string", short: "o", default: path.join(ROOT, "dist", "bin") },
      bundle: { type: "string", short: "b" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    say(
      "Usage: deno task compile [--target TARGET]... [--out DIR] [--bundle FILE]\n" +
        `Targets: ${TARGETS.join(", ")}\n` +
        "--bundle: compile this bundle as is (default: dist/fileconveyor.js, rebuilt when stale)",
    );
    return 0;
  }
  const targets = values.target?.length ? values.target : [...TARGETS];
  for (const t of targets) {
    if (!TARGETS.includes(t)) {
      say(`Unknown target "${t}"; expected one of: ${TARGETS.join(", ")}`);
      return 2;
    }
  }
  if (Deno.env.get("DENORT_BIN") && targets.length !== 1) {
    say(
      "DENORT_BIN names the runtime of ONE target, but every target would use it: pass exactly one --target",
    );
    return 2;
  }
  const outDir = path.resolve(values.out);
  let bundle: string;
  if (values.bundle) {
    bundle = path.resolve(values.bundle);
    if (!fs.existsSync(bundle)) {
      say(`Cannot find the bundle "${bundle}"`);
      return 2;
    }
  } else bundle = await ensureBundle({ log: say });
  const dir = await denoCacheDir();
  const results: TargetResult[] = [];
  for (const target of targets) {
    const t0 = performance.now();
    const source = Deno.env.get("DENORT_BIN")
      ? `DENORT_BIN=${Deno.env.get("DENORT_BIN")}`
      : fs.existsSync(cachedRuntimePath(dir, target))
      ? "cached runtime"
      : "runtime from dl.deno.land";
    say(`Compiling ${target} (${source})…`);
    const r = await compileTarget(bundle, target, { outDir, denoDir: dir });
    if (r.status === "ok" && target === Deno.build.target) {
      const problem = await smokeTest(r.file!);
      if (problem) {
        fs.rmSync(r.file!, { force: true });
        Object.assign(r, { status: "failed", message: problem });
      }
    }
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    if (r.status === "ok") {
      say(
        `  ${path.relative(ROOT, r.file!)}: ${(r.size! / 1024 / 1024).toFixed(1)} MiB in ${secs} s`,
      );
    } else say(r.message!.split("\n").map((l) => `  ${l}`).join("\n"));
    results.push(r);
  }
  const ok = results.filter((r) => r.status === "ok");
  if (ok.length > 0) {
    const sums = ok.map((r) => `${r.sha256}  ${path.basename(r.file!)}\n`).join("");
    fs.writeFileSync(path.join(outDir, "SHA256SUMS"), sums);
    say(`Wrote ${path.relative(ROOT, path.join(outDir, "SHA256SUMS"))} (${ok.length} binaries)`);
  }
  const bad = results.filter((r) => r.status !== "ok");
  if (bad.length > 0) {
    say(
      `Not built: ${
        bad.map((r) => `${r.target} (${r.status === "no-runtime" ? "no runtime" : "failed"})`).join(
          ", ",
        )
      }`,
    );
    return 1;
  }
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    say(`Cannot compile: ${e instanceof Error ? e.message : String(e)}`);
    Deno.exit(1);
  }
}
