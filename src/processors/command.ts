/**
 * `command`: runs a program of the user's choice on each file.
 *
 * ```xml
 * <processor name="command" command="cwebp -quiet -lossless {in} -o {out}"
 *            extensions="png" rename=".webp" timeout="120"/>
 * <processor name="command" command="terser --compress --mangle" extensions="js"/>
 * <processor name="command" command="optipng -quiet {in}" output="inplace" extensions="png"/>
 * ```
 *
 * - `command` is split into arguments like a shell would (spaces separate,
 *   `'…'` and `"…"` quote, `\` escapes) but **no shell runs**, so file names
 *   need no quoting. Placeholders, also inside an argument
 *   (`--out={out}`): `{in}` the current content, `{out}` the file to write,
 *   `{name}` the current basename. `shell="true"` runs the text with
 *   `sh -c` instead, placeholders replaced by single-quoted paths.
 * - Output (`output`, default `auto`): `file` = the command writes `{out}`
 *   (`auto` when `{out}` appears); `stdout` = its standard output is the new
 *   content (`auto` otherwise); `inplace` = the command edits `{in}`, which
 *   is then a private copy. Without `{in}` the content arrives on standard
 *   input.
 * - `{in}` is otherwise the current content as it is (the source file when
 *   the command comes first): the command must not write to it.
 * - `rename`: a new extension (`.webp` replaces the last one) or a template
 *   with `{stem}` (name without extension), `{ext}` (with the dot) and
 *   `{name}`, e.g. `{stem}.min{ext}`.
 * - A non-zero exit status, a time-out (`timeout` seconds, default 60), a
 *   missing or (for a non-empty input) empty output fail the file with a
 *   `fatal` {@linkcode ClassifiedError} quoting the end of standard error:
 *   it is not retried until the file changes.
 * - `extensions` limits the files it runs on (default: all).
 * - The program is looked up on `PATH` in `setup`, so a typo stops the
 *   daemon at start-up rather than failing every file.
 *
 * @module
 */
import * as fs from "node:fs/promises";
import { readRegular } from "../util/regular_file.ts";
import * as path from "node:path";
import type { OptionSpec } from "../options.ts";
import { isTrue } from "../options.ts";
import type { ProcessContext, ProcessFile, ProcessorDef, ProcessResult } from "./processor.ts";
import {
  extensionIn,
  fatal,
  findTool,
  label,
  parseExtensions,
  runTool,
  splitName,
  tail,
} from "./_util.ts";

/**
 * Splits a command line into arguments like a POSIX shell, without any
 * expansion. Throws on an unterminated quote.
 */
export function splitCommand(text: string): string[] {
  const args: string[] = [];
  let cur = "";
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw new Error(`Unterminated ' in command ${JSON.stringify(text)}`);
      cur += text.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < text.length && text[j] !== '"'; j++) {
        if (text[j] === "\\" && /["\\$`]/.test(text[j + 1] ?? "")) j++;
        cur += text[j];
      }
      if (j >= text.length) throw new Error(`Unterminated " in command ${JSON.stringify(text)}`);
      i = j;
      inWord = true;
    } else if (c === "\\" && i + 1 < text.length) {
      cur += text[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) args.push(cur);
      cur = "";
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) args.push(cur);
  return args;
}

/** Quotes a value for `sh`. */
function shQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

function substitute(
  text: string,
  values: Record<string, string>,
  quote: (s: string) => string,
): string {
  return text.replace(
    /\{(in|out|name)\}/g,
    (m, k: string) => values[k] !== undefined ? quote(values[k]!) : m,
  );
}

/** Applies the `rename` option to a basename. */
export function renameWith(name: string, rule: string | undefined): string {
  if (!rule) return name;
  const { stem, ext } = splitName(name);
  if (!rule.includes("{")) return stem + (rule.startsWith(".") ? rule : "." + rule);
  const out = rule.replaceAll("{stem}", stem).replaceAll("{ext}", ext).replaceAll("{name}", name);
  if (out === "" || out.includes("/")) {
    throw new Error(`rename="${rule}" gives an invalid name "${out}"`);
  }
  return out;
}

const OPTIONS: readonly OptionSpec[] = [
  {
    name: "command",
    help: "Program and arguments; {in}, {out}, {name} are replaced.",
    required: true,
  },
  { name: "shell", help: "Run the command with sh -c.", type: "boolean", default: "false" },
  {
    name: "output",
    help:
      "Where the result is: file ({out}), stdout, or inplace ({in} edited); auto picks file when {out} is used.",
    type: "enum",
    values: ["auto", "file", "stdout", "inplace"],
    default: "auto",
  },
  {
    name: "timeout",
    help: "Seconds the command may run for one file.",
    type: "integer",
    min: 1,
    default: "60",
  },
  {
    name: "extensions",
    help: "Extensions to run on, separated by ':' or ',' (default: all files).",
  },
  { name: "rename", help: "New extension (.webp) or a template with {stem}, {ext}, {name}." },
];

async function runCommand(file: ProcessFile, ctx: ProcessContext) {
  if (!extensionIn(file.name, parseExtensions(ctx.options.extensions))) return undefined;
  const text = ctx.options.command ?? "";
  const shell = isTrue(ctx.options.shell);
  let mode = ctx.options.output ?? "auto";
  if (mode === "auto") mode = text.includes("{out}") ? "file" : "stdout";
  let newName: string;
  try {
    newName = renameWith(file.name, ctx.options.rename);
  } catch (e) {
    throw fatal((e as Error).message);
  }
  const outPath = path.join(ctx.workDir, newName);
  let inPath = file.path;
  if (mode === "inplace") {
    await fs.mkdir(path.join(ctx.workDir, "in"), { recursive: true });
    inPath = path.join(ctx.workDir, "in", file.name);
    await fs.writeFile(inPath, await readRegular(file.path));
  }
  const values = { in: inPath, out: outPath, name: file.name };
  const usesIn = text.includes("{in}");
  let cmd: string;
  let args: string[];
  if (shell) {
    cmd = "sh";
    args = ["-c", substitute(text, values, shQuote)];
  } else {
    const words = splitCommand(text);
    cmd = substitute(words[0] ?? "", values, (s) => s);
    // The command runs in the work directory: a relative program path means the daemon's.
    if (cmd.includes("/")) cmd = path.resolve(cmd);
    args = words.slice(1).map((w) => substitute(w, values, (s) => s));
  }
  const input = usesIn ? undefined : await readRegular(file.path);
  const timeoutS = Number(ctx.options.timeout ?? "60");
  let r;
  try {
    r = await runTool(cmd, args, {
      signal: ctx.signal,
      timeoutMs: timeoutS * 1000,
      cwd: ctx.workDir,
      ...(input ? { stdin: input } : {}),
    });
  } catch (e) {
    if (ctx.signal.aborted) throw e;
    throw fatal(`Cannot run ${JSON.stringify(cmd)} for ${label(file)}: ${(e as Error).message}`, e);
  }
  ctx.signal.throwIfAborted();
  if (r.timedOut) {
    throw fatal(
      `Command ${JSON.stringify(cmd)} timed out after ${timeoutS} s on ${
        label(file)
      } (raise timeout="…")`,
    );
  }
  if (r.code !== 0) {
    const err = tail(r.stderr);
    throw fatal(
      `Command ${JSON.stringify(cmd)} failed on ${label(file)} with exit status ${r.code}${
        err ? `: ${err}` : ""
      }`,
    );
  }
  const inputSize = (await fs.stat(file.path)).size;
  let resultPath: string;
  if (mode === "stdout") {
    if (r.stdout.length === 0 && inputSize > 0) {
      throw fatal(
        `Command ${JSON.stringify(cmd)} wrote nothing to standard output for ${label(file)}`,
      );
    }
    await fs.writeFile(outPath, r.stdout);
    resultPath = outPath;
  } else {
    resultPath = mode === "inplace" ? inPath : outPath;
    let size: number;
    try {
      size = (await fs.stat(resultPath)).size;
    } catch {
      throw fatal(`Command ${JSON.stringify(cmd)} did not create its output for ${label(file)}`);
    }
    if (size === 0 && inputSize > 0) {
      throw fatal(`Command ${JSON.stringify(cmd)} produced an empty file for ${label(file)}`);
    }
  }
  if (r.stderr.trim()) ctx.log.debug(`${label(file)}: ${tail(r.stderr, 300)}`);
  const result: ProcessResult = { path: resultPath };
  if (newName !== file.name) result.name = newName;
  return result;
}

/** `command`. */
export const command: ProcessorDef = {
  name: "command",
  summary: 'Runs a program on each file ({in}, {out} placeholders; no shell unless shell="true").',
  options: OPTIONS,
  async setup(ctx) {
    const text = ctx.options.command ?? "";
    if (isTrue(ctx.options.shell)) {
      if (!(await findTool("sh"))) throw new Error('shell="true" needs `sh` on PATH');
      return;
    }
    const words = splitCommand(text);
    if (words.length === 0) throw new Error("command is empty");
    const program = words[0]!;
    if (program.includes("{")) return; // a placeholder as the program: checked when it runs
    if (!(await findTool(program))) {
      throw new Error(
        `program ${JSON.stringify(program)} of command ${
          JSON.stringify(text)
        } was not found on PATH`,
      );
    }
    renameWith("x.y", ctx.options.rename);
  },
  process: runCommand,
};
