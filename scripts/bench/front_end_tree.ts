/**
 * Builds the real front-end tree the sample-chain measurements use: the
 * `node_modules` of nine front-end packages at fixed versions, installed
 * with npm (no install scripts), minus three folders of duplicates, 6,239
 * files, 72 MB (2,225 JS, 177 CSS, 312 PNG, 2,889 SVG; the rest SCSS,
 * source maps, type definitions, fonts and text).
 *
 * Run: `deno run -A scripts/bench/front_end_tree.ts DIR`; the tree is then
 * `DIR/node_modules`. Then, for example:
 * `deno run -A scripts/bench/processors.ts --chain DIR/node_modules`, or a
 * `fileconveyor sync --once` with the original's sample rule over it.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";

/** The packages, at the versions measured. */
export const FRONT_END_PACKAGES = [
  "@fortawesome/fontawesome-free@7.3.1",
  "@popperjs/core@2.11.8",
  "bootstrap@5.3.9",
  "highlight.js@11.12.0",
  "jquery@4.1.0",
  "jquery-ui@1.14.2",
  "lodash-es@4.18.1",
  "moment@2.31.0",
  "tinymce@6.8.6",
];

/** Folders removed after the install (copies of what the tree already has). */
const REMOVED = [
  "@fortawesome/fontawesome-free/svgs-full",
  "highlight.js/es",
  "highlight.js/styles",
];

/** Installs the tree into `dir/node_modules`; returns that path. */
export async function frontEndTree(dir: string): Promise<string> {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "package.json"), '{"name":"front-end-tree","private":true}\n');
  const out = await new Deno.Command("npm", {
    args: ["install", "--no-audit", "--no-fund", "--ignore-scripts", ...FRONT_END_PACKAGES],
    cwd: dir,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (out.code !== 0) throw new Error(`npm install exited with ${out.code}`);
  const modules = path.join(dir, "node_modules");
  for (const r of REMOVED) fs.rmSync(path.join(modules, r), { recursive: true, force: true });
  return modules;
}

if (import.meta.main) {
  const dir = Deno.args[0];
  if (!dir) throw new Error("Usage: front_end_tree.ts DIR");
  // deno-lint-ignore no-console
  console.log(await frontEndTree(path.resolve(dir)));
}
