/**
 * The broken-config corpus (tests/testdata/bad_configs): every file must
 * make `validate` and `sync --once` exit 2 with a message naming the line
 * and the element, before anything starts or is written.
 *
 * Each file starts with `<!-- expect: line N: PATH: MESSAGE -->`; the CLI
 * must print `FILE:N: PATH: MESSAGE…`. `@SRC@`, `@DST@` and `@DATA@` are
 * replaced with a fresh workspace's directories. A JSON sidecar may ask for
 * `"chmod"` (file mode) and `"user": "nobody"` (run without root's
 * permission override, so the mode applies).
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals } from "../_assert.ts";
import { workspace } from "../_harness.ts";
import { NO_DAC, run } from "./_util.ts";

const DIR = path.resolve(import.meta.dirname!, "..", "testdata", "bad_configs");

interface Case {
  name: string;
  text: string;
  line: string;
  fragment: string;
  chmod?: string;
  noDac: boolean;
}

function cases(): Case[] {
  const out: Case[] = [];
  for (const f of fs.readdirSync(DIR).filter((f) => f.endsWith(".xml")).sort()) {
    const text = fs.readFileSync(path.join(DIR, f), "utf8");
    const m = /^<!-- expect: line (\d+|\?): (.*) -->\n/.exec(text);
    if (!m) throw new Error(`${f}: the first line must be <!-- expect: line N: MESSAGE -->`);
    const sidecar = path.join(DIR, f.replace(/\.xml$/, ".json"));
    const extra = fs.existsSync(sidecar)
      ? JSON.parse(fs.readFileSync(sidecar, "utf8")) as { chmod?: string; user?: string }
      : {};
    out.push({
      name: f,
      text,
      line: m[1]!,
      // XML comments cannot hold "--"; the corpus writes "- -".
      fragment: m[2]!.replaceAll("- -", "--"),
      ...(extra.chmod ? { chmod: extra.chmod } : {}),
      noDac: extra.user === "nobody",
    });
  }
  return out;
}

async function check(c: Case, root: string) {
  const ws = {
    src: path.join(root, "src"),
    dst: path.join(root, "dst"),
    data: path.join(root, "data"),
  };
  fs.mkdirSync(path.join(ws.src, "sub"), { recursive: true });
  fs.mkdirSync(ws.dst, { recursive: true });
  fs.writeFileSync(path.join(ws.src, "file.txt"), "x");
  fs.writeFileSync(path.join(ws.src, "sub", "a.css"), "a{}");
  const text = c.text.replaceAll("@SRC@", ws.src).replaceAll("@DST@", ws.dst).replaceAll(
    "@DATA@",
    ws.data,
  );
  const fragment = c.fragment.replaceAll("@SRC@", ws.src).replaceAll("@DST@", ws.dst);
  const config = path.join(root, "config.xml");
  fs.writeFileSync(config, text);
  if (c.chmod) fs.chmodSync(config, parseInt(c.chmod, 8));
  for (const args of [["validate", "--config", config], ["sync", "--once", "--config", config]]) {
    const r = await run(args, { ...(c.noDac ? { prefix: NO_DAC } : {}), timeoutMs: 30_000 });
    const what = `${c.name}: ${args[0]}${args[1] === "--once" ? " --once" : ""}`;
    assertEquals(r.code, 2, `${what} exit code (stderr: ${r.stderr.slice(0, 800)})`);
    const expected = `${config}:${c.line}: ${fragment}`;
    assert(
      r.stderr.includes(expected),
      `${what}: expected stderr to contain\n  ${expected}\ngot:\n${r.stderr.slice(0, 1500)}`,
    );
    assertEquals(r.stdout, "", `${what} printed to stdout`);
    assert(!fs.existsSync(ws.data), `${what} created the data directory`);
    assert(
      !fs.existsSync(path.join(root, "fileconveyor-data")),
      `${what} created the default data directory`,
    );
    assertEquals(fs.readdirSync(ws.dst), [], `${what} wrote to the destination`);
  }
}

Deno.test("bad configs: the corpus has at least 40 cases, each with an expected line and message", () => {
  const all = cases();
  assert(all.length >= 40, `only ${all.length} cases`);
  for (const c of all) assert(c.fragment.length > 10, `${c.name}: fragment too short`);
});

Deno.test("bad configs: validate and sync --once exit 2 naming line and element, writing nothing", async (t) => {
  const all = cases();
  const ws = workspace("fc-badcfg-");
  try {
    // Four at a time: each case is two short CLI runs.
    const queue = [...all];
    const failures: string[] = [];
    await Promise.all(Array.from({ length: 4 }, async () => {
      for (let c = queue.shift(); c; c = queue.shift()) {
        const root = path.join(ws.root, c.name.replace(/\.xml$/, ""));
        fs.mkdirSync(root);
        try {
          await check(c, root);
        } catch (e) {
          failures.push((e as Error).message);
        }
      }
    }));
    await t.step(`${all.length} configs checked`, () => {
      assertEquals(failures.length, 0, failures.join("\n\n"));
    });
  } finally {
    ws.cleanup();
  }
});
