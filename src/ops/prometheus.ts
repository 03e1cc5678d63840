/**
 * The Prometheus text exposition format (version 0.0.4): metric families
 * with HELP and TYPE lines, escaped labels, and a cumulative histogram.
 *
 * @module
 */

/** Label names and values of one sample. */
export type Labels = Record<string, string>;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function formatLabels(labels: Labels | undefined): string {
  if (!labels) return "";
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

/**
 * Builds one exposition text.
 *
 * @example
 * ```ts
 * import { Exposition } from "./prometheus.ts";
 * const e = new Exposition();
 * e.family("fileconveyor_queue_depth", "gauge", "Queued files");
 * e.sample("fileconveyor_queue_depth", 3, { server: "cdn" });
 * if (!e.text().includes('fileconveyor_queue_depth{server="cdn"} 3')) throw new Error();
 * ```
 */
export class Exposition {
  readonly #lines: string[] = [];
  readonly #constant: Labels;

  /**
   * `constant` labels go first on every sample (e.g. the fleet's `node`);
   * without them each sample carries only its own labels.
   */
  constructor(constant: Labels = {}) {
    this.#constant = constant;
  }

  /** Starts a metric family. */
  family(name: string, type: "counter" | "gauge" | "histogram", help: string): void {
    this.#lines.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`);
  }

  /** Adds one sample to the current family. */
  sample(name: string, value: number, labels?: Labels): void {
    const all = Object.keys(this.#constant).length ? { ...this.#constant, ...labels } : labels;
    this.#lines.push(`${name}${formatLabels(all)} ${formatValue(value)}`);
  }

  /** The whole text, ending with a newline. */
  text(): string {
    return this.#lines.join("\n") + "\n";
  }
}

/**
 * A cumulative histogram per label set.
 *
 * @example
 * ```ts
 * import { Exposition, Histogram } from "./prometheus.ts";
 * const h = new Histogram([0.1, 1, 10]);
 * h.observe(0.5, { server: "cdn" });
 * const e = new Exposition();
 * h.write(e, "fileconveyor_sync_lag_seconds", "Lag");
 * if (!e.text().includes('le="1"} 1')) throw new Error(e.text());
 * ```
 */
export class Histogram {
  readonly buckets: readonly number[];
  readonly #series = new Map<
    string,
    { labels: Labels; counts: number[]; sum: number; n: number }
  >();

  constructor(buckets: readonly number[]) {
    this.buckets = [...buckets].sort((a, b) => a - b);
  }

  /** Records one value. */
  observe(value: number, labels: Labels = {}): void {
    const key = JSON.stringify(Object.entries(labels).sort());
    let s = this.#series.get(key);
    if (!s) {
      s = { labels, counts: this.buckets.map(() => 0), sum: 0, n: 0 };
      this.#series.set(key, s);
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) s.counts[i]!++;
    s.sum += value;
    s.n++;
  }

  /** Makes sure a label set appears (with zeros) before anything is observed. */
  touch(labels: Labels): void {
    const key = JSON.stringify(Object.entries(labels).sort());
    if (!this.#series.has(key)) {
      this.#series.set(key, { labels, counts: this.buckets.map(() => 0), sum: 0, n: 0 });
    }
  }

  /** Writes the family (`_bucket`, `_sum`, `_count`). */
  write(e: Exposition, name: string, help: string): void {
    e.family(name, "histogram", help);
    for (const s of this.#series.values()) {
      for (let i = 0; i < this.buckets.length; i++) {
        e.sample(`${name}_bucket`, s.counts[i]!, {
          ...s.labels,
          le: formatValue(this.buckets[i]!),
        });
      }
      e.sample(`${name}_bucket`, s.n, { ...s.labels, le: "+Inf" });
      e.sample(`${name}_sum`, s.sum, s.labels);
      e.sample(`${name}_count`, s.n, s.labels);
    }
  }
}
