/**
 * The oracle of the model-based test: how the destination differs from what
 * the model implies, and which differences no reported failure accounts for.
 *
 * @module
 */
import type { Failure } from "./_engines.ts";
import type { Model } from "./_model.ts";

/** One difference between the destination and the model. */
export interface Diff {
  path: string;
  what: "missing" | "extra" | "differs" | "special";
}

/** Regular files the destination misses, holds with other content, or holds extra; special entries. */
export function diffDst(
  expected: Map<string, string>,
  dst: Map<string, { type: string; content?: string }>,
): Diff[] {
  const out: Diff[] = [];
  for (const [p, data] of expected) {
    const d = dst.get(p);
    if (!d || d.type !== "f") out.push({ path: p, what: "missing" });
    else if (d.content !== data) out.push({ path: p, what: "differs" });
  }
  for (const [p, d] of dst) {
    if (d.type === "d") continue;
    if (d.type !== "f") out.push({ path: p, what: "special" });
    else if (!expected.has(p)) out.push({ path: p, what: "extra" });
  }
  return out.sort((a, b) => a.path < b.path ? -1 : 1);
}

/** Names as the engine can print them: runs of undecodable bytes become one U+FFFD. */
function norm(p: string): string {
  return p.replace(/[\uDC80-\uDCFF\uFFFD]+/g, "\uFFFD");
}

function relOf(src: string, file: string): string {
  return norm(file.startsWith(src + "/") ? file.slice(src.length + 1) : file);
}

/** The differences no failure in `status` accounts for. */
export function uncovered(diffs: Diff[], failures: Failure[], model: Model, src: string): Diff[] {
  const reported = failures.filter((f) => (f.error ?? "").trim() !== "").map((f) =>
    relOf(src, f.file)
  );
  const covers = (p: string) => {
    const n = norm(p);
    return reported.some((r) => r === n || n.startsWith(r + "/"));
  };
  return diffs.filter((d) => {
    if (d.what === "special") return true;
    // Removed from the destination behind the daemon's back, unchanged since: only verify knows.
    if (d.what === "missing" && model.dstGone.has(d.path)) {
      if (model.dstGone.get(d.path) === model.expected().get(d.path)) return false;
    }
    if (covers(d.path)) return false;
    const target = model.get(d.path)?.kind === "symlink" ? model.resolve(d.path) : undefined;
    return !(target !== undefined && covers(target));
  });
}
