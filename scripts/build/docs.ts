/**
 * Regenerates the README's tables from the option schemas (transports,
 * processors, settings), so the documentation cannot drift from the code.
 *
 *   deno task docs          # rewrite README.md
 *   deno task docs --check  # exit 1 when README.md is out of date
 *
 * @module
 */
import "../../src/transports/mod.ts";
import "../../src/processors/mod.ts";
import { SETTINGS_SPEC } from "../../src/config/settings.ts";
import type { OptionSpec } from "../../src/options.ts";
import { processorDefs } from "../../src/processors/processor.ts";
import { transportDefs } from "../../src/transports/transport.ts";

function cell(s: string): string {
  return s.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

function optionRows(options: readonly OptionSpec[]): string[] {
  return options.map((o) => {
    const type = o.type === "enum"
      ? o.values!.map((v) => `\`${v}\``).join(" \\| ")
      : o.type ?? "string";
    const flags = [o.required ? "**required**" : "", o.secret ? "secret" : ""].filter(Boolean).join(
      ", ",
    );
    return `| \`${o.name}\` | ${type} | ${
      o.default !== undefined ? `\`${cell(o.default)}\`` : ""
    } | ${flags} | ${cell(o.help)} |`;
  });
}

/** The generated markdown for one marker name. */
export function generate(name: string): string {
  const head = "| setting | type | default | | meaning |\n|---|---|---|---|---|";
  switch (name) {
    case "transports":
      return transportDefs().sort((a, b) => a.name.localeCompare(b.name)).map((d) =>
        [
          `#### \`${d.name}\`${
            d.aliases?.length ? ` (also ${d.aliases.map((a) => `\`${a}\``).join(", ")})` : ""
          }`,
          "",
          d.summary,
          "",
          head,
          ...optionRows(d.options),
        ].join("\n")
      ).join("\n\n");
    case "processors":
      return [
        "| processor | files | per server | options | what it does |",
        "|---|---|---|---|---|",
        ...processorDefs().sort((a, b) => a.name.localeCompare(b.name)).map((d) =>
          `| \`${d.name}\`${
            d.aliases?.length ? ` (${d.aliases.map((a) => `\`${a}\``).join(", ")})` : ""
          } | ${d.extensions?.join(" ") ?? "all"} | ${d.differentPerServer ? "yes" : ""} | ${
            (d.options ?? []).map((o) => `\`${o.name}\``).join(", ")
          } | ${cell(d.summary)} |`
        ),
      ].join("\n");
    case "settings":
      return [head, ...optionRows(SETTINGS_SPEC)].join("\n");
  }
  throw new Error(`Unknown generated section "${name}"`);
}

/** Rewrites every `<!-- BEGIN GENERATED: name -->…<!-- END GENERATED -->` block. */
export function render(readme: string): string {
  return readme.replace(
    /(<!-- BEGIN GENERATED: (\w+) -->)[\s\S]*?(<!-- END GENERATED -->)/g,
    (_m, open: string, name: string, close: string) => `${open}\n${generate(name)}\n${close}`,
  );
}

if (import.meta.main) {
  const file = new URL("../../README.md", import.meta.url);
  const text = Deno.readTextFileSync(file);
  const next = render(text);
  if (Deno.args.includes("--check")) {
    if (next !== text) {
      Deno.stderr.writeSync(
        new TextEncoder().encode("README.md is out of date: run `deno task docs`\n"),
      );
      Deno.exit(1);
    }
  } else if (next !== text) Deno.writeTextFileSync(file, next);
}
