/**
 * `deno task start`: syncs the bundled example site (example/site) once to
 * example/out through the processor chain of example/config.xml, then shows
 * what each file became and the commands to try next. Runs the CLI as a
 * user would; arguments are passed on to `sync` (e.g. `--dry-run`).
 * `FC_EXAMPLE_DIR` runs it on a copy of this directory instead (tests).
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";

const HERE = Deno.env.get("FC_EXAMPLE_DIR") ?? import.meta.dirname!;
const CONFIG = path.join(HERE, "config.xml");
const SITE = path.join(HERE, "site");
const OUT = path.join(HERE, "out", "static");

const enc = new TextEncoder();
function say(text = ""): void {
  Deno.stdout.writeSync(enc.encode(text + "\n"));
}

/** A path as the user would type it from the current directory. */
function shown(p: string): string {
  return path.relative(Deno.cwd(), p) || ".";
}

/** Every file below `root`, relative, `/`-separated, sorted. */
function files(root: string): string[] {
  if (!fs.existsSync(root)) return [];
  return (fs.readdirSync(root, { recursive: true }) as string[])
    .map((f) => f.split(path.sep).join("/"))
    .filter((f) => fs.statSync(path.join(root, f)).isFile())
    .sort();
}

/** The source file a published one came from: `name_<hash>.ext` → `name.ext`. */
function sourceOf(published: string): string {
  return published.replace(/_[0-9a-f]{8,}(\.[^./]+)$/, "$1");
}

const WHAT: Record<string, string> = {
  ".css": "minified, url()s rewritten to the CDN, unique name",
  ".js": "minified, unique name",
  ".png": "optimised losslessly, unique name",
};

const sync = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-A",
    path.join(import.meta.dirname!, "..", "mod.ts"),
    "sync",
    "--config",
    CONFIG,
    "--once",
    ...Deno.args,
  ],
  stdin: "null",
  stdout: "inherit",
  stderr: "inherit",
});
const { code } = await sync.spawn().status;
if (code !== 0) Deno.exit(code);

const published = files(OUT);
if (published.length > 0) {
  say();
  say(`What ${shown(SITE)} became in ${shown(OUT)} (served as http://localhost:8080/static/…):`);
  const width = Math.max(...published.map((p) => sourceOf(p).length));
  for (const p of published) {
    const src = sourceOf(p);
    const before = fs.statSync(path.join(SITE, src)).size;
    const after = fs.statSync(path.join(OUT, p)).size;
    const what = WHAT[path.extname(src)] ?? (src === p ? "copied as it is" : "unique name");
    say(
      `  ${src.padEnd(width)}  ${String(before).padStart(6)} B → ${
        String(after).padStart(6)
      } B  ${p}  (${what})`,
    );
  }
  const css = published.find((p) => p.endsWith(".css"));
  say();
  if (css) say(`Look at ${shown(path.join(OUT, css))}: its url()s point at the unique names.`);
  say("Try next:");
  const cfg = shown(CONFIG);
  say(`  deno task fileconveyor url --config ${cfg} ${shown(path.join(SITE, "css/style.css"))}`);
  say(`  deno task fileconveyor status --config ${cfg}`);
  say("  deno task start    # again: nothing unchanged is uploaded twice");
  say(`  deno task demo     # keeps watching: edit a file in ${shown(SITE)} and see it arrive`);
}
