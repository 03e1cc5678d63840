/**
 * `filename.*`: rename a file without touching its content.
 *
 * - `filename.SpacesToUnderscores`: `a b.txt` → `a_b.txt`
 * - `filename.SpacesToDashes`: `a b.txt` → `a-b.txt`
 *
 * The original replaced spaces in the *original* basename, which undid a
 * rename by an earlier processor; these replace spaces in the current name,
 * which is the same thing when they come first in the chain. No copy is
 * made: only the published name changes.
 *
 * @module
 */
import type { ProcessorDef } from "./processor.ts";

function spaces(name: string, replacement: string, summary: string): ProcessorDef {
  return {
    name,
    summary,
    createsWorkDir: true,
    // deno-lint-ignore require-await
    async process(file) {
      if (!file.name.includes(" ")) return undefined;
      return { name: file.name.replaceAll(" ", replacement) };
    },
  };
}

/** `filename.SpacesToUnderscores`. */
export const spacesToUnderscores: ProcessorDef = spaces(
  "filename.SpacesToUnderscores",
  "_",
  'Replaces spaces in the file name with "_" (content unchanged).',
);

/** `filename.SpacesToDashes`. */
export const spacesToDashes: ProcessorDef = spaces(
  "filename.SpacesToDashes",
  "-",
  'Replaces spaces in the file name with "-" (content unchanged).',
);
