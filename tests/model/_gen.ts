/**
 * A seeded generator of operation sequences for the model-based engine
 * test. Pure: the same seed and options always give the same ops, which
 * are concrete (paths and contents spelled out) so a sequence can be
 * printed, saved and replayed without the generator.
 *
 * @module
 */
import {
  applyToModel,
  dirname,
  isRaw,
  Model,
  type NewFile,
  type Op,
  type OpClass,
  OUTSIDE,
} from "./_model.ts";

/** How the engine is driven (see `_engines.ts`). */
export type Driver = "once" | "watch" | "cli";

/** Classes each driver can run: `perm` needs a non-root daemon, `kill9` a subprocess. */
export const DRIVER_CLASSES: Record<Driver, readonly OpClass[]> = {
  once: [
    "create",
    "modify",
    "delete",
    "rename",
    "swap",
    "mkdirp",
    "rmr",
    "racy",
    "type-change",
    "special",
    "non-utf8",
    "hardlink",
    "symlink",
    "inode-reuse",
    "dst-removed",
  ],
  // No `special` here: Deno has one OS watcher thread per process, and a FIFO can leave it
  // blocked for good (created and removed before it could be freed). A real daemon is its own
  // process and polls on (tests/reliability/hostile_fifo_test.ts), but in-process sequences
  // share the thread, so every later sequence of the test process would poll or wait. The cli
  // driver, a process per daemon, runs this class.
  watch: [
    "create",
    "modify",
    "delete",
    "rename",
    "swap",
    "mkdirp",
    "rmr",
    "racy",
    "type-change",

    "non-utf8",
    "hardlink",
    "symlink",
    "inode-reuse",
    "dst-removed",
    "offline",
    "restart",
  ],
  cli: [
    "create",
    "modify",
    "delete",
    "rename",
    "swap",
    "mkdirp",
    "rmr",
    "racy",
    "type-change",
    "perm",
    "special",
    "non-utf8",
    "hardlink",
    "symlink",
    "inode-reuse",
    "dst-removed",
    "offline",
    "restart",
    "kill9",
  ],
};

/** Options of {@linkcode generate}. */
export interface GenOptions {
  driver: Driver;
  /** Classes allowed (intersected with the driver's). */
  classes: ReadonlySet<OpClass>;
  /** Operations on the tree after the initial population. */
  length: number;
}

/** mulberry32: a small, fast, seedable PRNG. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The seed of sequence `i` of a run with base seed `base`. */
export function seedOf(base: number, i: number): number {
  return (Math.imul(base ^ 0x9e3779b9, 2654435761) + Math.imul(i + 1, 40503)) >>> 0;
}

const FILE_NAMES = ["x.txt", "y.css", "z", "w.js", "v.html", "u.txt"];
const DIR_NAMES = ["a", "b", "c", "d"];
const RAW_FILE_NAMES = ["\uDCFF\uDCFE.txt", "n\uDCE9.css", "\uDC80"];
const RAW_DIR_NAMES = ["d\uDCE9"];
const ALPHA = "abcdefghijklmnopqrstuvwxyz0123456789";

const BASE: ReadonlySet<OpClass> = new Set([
  "create",
  "modify",
  "delete",
  "rename",
  "swap",
  "mkdirp",
  "rmr",
  "racy",
  "type-change",
]);

class Gen {
  readonly r: () => number;
  readonly m = new Model();
  readonly ops: Op[] = [];
  readonly o: GenOptions;
  readonly classes: OpClass[];
  running = false;
  startIn = -1;
  checkNext = false;
  readonly unlockIn = new Map<string, number>();

  constructor(seed: number, o: GenOptions) {
    this.r = prng(seed);
    this.o = o;
    this.classes = DRIVER_CLASSES[o.driver].filter((c) => o.classes.has(c));
  }

  int(lo: number, hi: number): number {
    return lo + Math.floor(this.r() * (hi - lo + 1));
  }

  pick<T>(xs: readonly T[]): T | undefined {
    return xs.length === 0 ? undefined : xs[Math.floor(this.r() * xs.length)];
  }

  data(len?: number, not?: string): string {
    const n = len ?? (this.r() < 0.1 ? this.int(0, 4) : this.r() < 0.05 ? 70_000 : this.int(5, 80));
    for (;;) {
      let s = "";
      for (let i = 0; i < n; i++) s += ALPHA[Math.floor(this.r() * ALPHA.length)];
      if (s !== not || n === 0) return s;
    }
  }

  of(kind: "file" | "dir" | "nondir" | "any"): string[] {
    const out: string[] = [];
    for (const [p, n] of this.m.entries) {
      if (kind === "any" || n.kind === kind || (kind === "nondir" && n.kind !== "dir")) out.push(p);
    }
    return out.sort();
  }

  /** A path that does not exist yet, in an existing (or the root) directory. */
  fresh(names: readonly string[]): string | undefined {
    for (let i = 0; i < 10; i++) {
      const dir = this.pick(["", "", ...this.of("dir")])!;
      const p = dir === "" ? this.pick(names)! : `${dir}/${this.pick(names)}`;
      if (!this.m.get(p)) return p;
    }
    return undefined;
  }

  files(base: string, raw = false): NewFile[] {
    const out: NewFile[] = [];
    for (let i = this.int(1, 5); i > 0; i--) {
      const depth = this.int(0, 3);
      const parts: string[] = [];
      for (let d = 0; d < depth; d++) parts.push(this.pick(DIR_NAMES)!);
      if (raw && this.r() < 0.5) parts.push(this.pick(RAW_DIR_NAMES)!);
      parts.push(raw && this.r() < 0.5 ? this.pick(RAW_FILE_NAMES)! : this.pick(FILE_NAMES)!);
      const rel = parts.join("/");
      // A name may not be both a file and a directory within one burst.
      if (out.some((f) => f.rel.startsWith(rel + "/") || rel.startsWith(f.rel + "/"))) continue;
      out.push({ rel, data: this.data() });
    }
    return out.length > 0 ? out : [{ rel: `${base === "" ? "" : ""}x.txt`, data: this.data() }];
  }

  /** Relative target written in a link at `link` pointing to `target`. */
  relTarget(link: string, target: string): string {
    const from = dirname(link) === "" ? [] : dirname(link).split("/");
    const to = target.split("/");
    let i = 0;
    while (i < from.length && i < to.length - 1 && from[i] === to[i]) i++;
    return [...from.slice(i).map(() => ".."), ...to.slice(i)].join("/");
  }

  build(cls: OpClass): Op | undefined {
    const m = this.m;
    switch (cls) {
      case "create": {
        const path = this.fresh(FILE_NAMES);
        return path === undefined ? undefined : { op: "write", cls, path, data: this.data() };
      }
      case "modify": {
        const path = this.pick(this.of("file"));
        if (path === undefined) return undefined;
        const shared = m.links(path).length > 1;
        const linked = [...m.entries].some(([p, n]) =>
          n.kind === "symlink" && m.resolve(p) === path
        );
        return {
          op: "write",
          cls: shared ? "hardlink" : linked ? "symlink" : cls,
          path,
          data: this.data(undefined, m.content(path)),
        };
      }
      case "racy": {
        const path = this.pick(this.of("file").filter((p) => m.content(p)!.length > 0));
        if (path === undefined) return undefined;
        const old = m.content(path)!;
        return { op: "racy", cls, path, data: this.data(old.length, old) };
      }
      case "delete": {
        const path = this.pick(this.of("nondir"));
        return path === undefined ? undefined : { op: "delete", cls, path };
      }
      case "rename": {
        const from = this.pick(this.of("any"));
        if (from === undefined) return undefined;
        const isDir = m.isDir(from);
        const onto = !isDir && this.r() < 0.3 ? this.pick(this.of("file")) : undefined;
        const to = onto ?? this.fresh(isDir ? DIR_NAMES : FILE_NAMES);
        return to === undefined ? undefined : { op: "rename", cls, from, to };
      }
      case "swap": {
        const fs = this.of("file");
        const a = this.pick(fs), b = this.pick(fs);
        return a === undefined || b === undefined || a === b
          ? undefined
          : { op: "swap", cls, a, b };
      }
      case "mkdirp": {
        const base = this.fresh(DIR_NAMES);
        return base === undefined
          ? undefined
          : { op: "mkdirp", cls, base, files: this.files(base) };
      }
      case "rmr": {
        const path = this.pick(this.of("dir"));
        return path === undefined ? undefined : { op: "rmr", cls, path };
      }
      case "type-change": {
        if (this.r() < 0.5) {
          const path = this.pick(this.of("file"));
          if (path !== undefined) {
            return { op: "file-to-dir", cls, path, files: this.files(path) };
          }
        }
        const path = this.pick(this.of("dir"));
        return path === undefined ? undefined : { op: "dir-to-file", cls, path, data: this.data() };
      }
      case "perm": {
        const path = this.pick(
          [...this.of("file"), ...this.of("dir")].filter((p) => !m.locked.has(p)),
        );
        if (path === undefined) return undefined;
        const mode = m.isDir(path) && this.r() < 0.3 ? 0o311 : 0;
        // A change the engine has to read right before the permission goes, and often a
        // quiescent point while it is gone.
        if (m.isDir(path)) {
          const inner = `${path}/${this.pick(FILE_NAMES)}`;
          if (!m.get(inner)) this.push({ op: "write", cls, path: inner, data: this.data() });
        } else this.push({ op: "write", cls, path, data: this.data(undefined, m.content(path)) });
        this.unlockIn.set(path, this.int(1, 4));
        if (this.r() < 0.5) this.checkNext = true;
        return { op: "lock", cls, path, mode };
      }
      case "special": {
        const path = this.fresh(["p", "q.txt", "s.sock"]);
        if (path === undefined) return undefined;
        const op = this.r() < 0.6 ? "fifo" : "socket";
        // Deno binds a Unix socket only at a path it can spell as a string (UTF-8): below a
        // name that is not UTF-8 the special file is a FIFO instead.
        return { op: op === "socket" && isRaw(path) ? "fifo" : op, cls, path };
      }
      case "non-utf8": {
        const k = this.r();
        if (k < 0.4) {
          const path = this.fresh(RAW_FILE_NAMES);
          return path === undefined ? undefined : { op: "write", cls, path, data: this.data() };
        }
        if (k < 0.7) {
          const base = this.fresh([...DIR_NAMES, ...RAW_DIR_NAMES]);
          if (base === undefined) return undefined;
          return { op: "mkdirp", cls, base, files: this.files(base, true) };
        }
        const from = this.pick(this.of("file"));
        const to = this.fresh(RAW_FILE_NAMES);
        return from === undefined || to === undefined ? undefined : { op: "rename", cls, from, to };
      }
      case "hardlink": {
        const from = this.pick(this.of("file"));
        if (from === undefined) return undefined;
        const shared = this.of("file").filter((p) => m.links(p).length > 1);
        if (shared.length > 0 && this.r() < 0.5) {
          const path = this.pick(shared)!;
          return { op: "write", cls, path, data: this.data(undefined, m.content(path)) };
        }
        const to = this.fresh(FILE_NAMES);
        return to === undefined ? undefined : { op: "hardlink", cls, from, to };
      }
      case "symlink": {
        const targets = [...m.entries].filter(([p, n]) => n.kind === "symlink" && m.resolve(p))
          .map(([p]) => m.resolve(p)!).filter((p) => m.isFile(p));
        if (targets.length > 0 && this.r() < 0.4) {
          const path = this.pick(targets)!;
          return { op: "write", cls, path, data: this.data(undefined, m.content(path)) };
        }
        const path = this.r() < 0.2 ? this.pick(this.of("file")) : this.fresh(FILE_NAMES);
        if (path === undefined) return undefined;
        const k = this.r();
        let target: string;
        const file = this.pick(this.of("file").filter((p) => p !== path));
        const dir = this.pick(this.of("dir"));
        if (k < 0.55 && file !== undefined) target = this.relTarget(path, file);
        else if (k < 0.7 && dir !== undefined) target = this.relTarget(path, dir);
        else if (k < 0.8) target = "missing-target";
        else if (k < 0.9) target = `${OUTSIDE}/outside.txt`;
        else target = path.split("/").pop()!;
        return { op: "symlink", cls, path, target };
      }
      case "inode-reuse": {
        const old = this.pick(
          this.of("file").filter((p) => m.content(p)!.length > 0 && m.links(p).length === 1),
        );
        const to = this.fresh(FILE_NAMES);
        if (old === undefined || to === undefined) return undefined;
        const c = m.content(old)!;
        return { op: "reuse", cls, old, to, data: this.data(c.length, c) };
      }
      case "dst-removed": {
        if (m.dstGone.size > 0 && this.r() < 0.5) return { op: "repair", cls };
        const path = this.pick(this.of("dir").filter((p) => !isRaw(p)));
        return path === undefined ? undefined : { op: "rmdst", cls, path };
      }
      case "offline":
        if (!this.running) return undefined;
        this.startIn = this.int(1, 4);
        return { op: "stop", cls };
      case "restart":
        return this.running ? { op: "restart", cls } : undefined;
      case "kill9":
        return this.running ? { op: "kill9", cls } : undefined;
    }
  }

  /** Marks ops that touch odd names or locked entries with those classes. */
  refine(op: Op): Op {
    if (!BASE.has(op.cls as OpClass)) return op;
    const paths = Object.entries(op).filter(([k]) =>
      ["path", "from", "to", "a", "b", "old", "base"].includes(k)
    )
      .map(([, v]) => v as string);
    if (paths.some(isRaw)) return { ...op, cls: "non-utf8" };
    if (
      paths.some((p) => this.m.lockedAt(p) || this.m.under(p).some((q) => this.m.locked.has(q)))
    ) {
      return { ...op, cls: "perm" };
    }
    return op;
  }

  push(op: Op) {
    if (applyToModel(this.m, op)) this.ops.push(op);
  }

  tick() {
    for (const [p, n] of [...this.unlockIn]) {
      if (n <= 1) {
        this.unlockIn.delete(p);
        if (this.m.locked.has(p)) this.push({ op: "unlock", cls: "perm", path: p });
      } else this.unlockIn.set(p, n - 1);
    }
    if (this.startIn > 0 && --this.startIn === 0) {
      this.ops.push({ op: "start", cls: "offline" });
      this.running = true;
    }
  }

  run(): Op[] {
    const watching = this.o.driver !== "once";
    this.push({ op: "mkdirp", cls: "mkdirp", base: "a", files: this.files("a") });
    for (let i = this.int(1, 3); i > 0; i--) {
      const op = this.build("create");
      if (op) this.push(op);
    }
    if (watching) {
      this.ops.push({ op: "start", cls: "control" });
      this.running = true;
    }
    this.ops.push({ op: "check", cls: "control" });
    for (let i = 0; i < this.o.length; i++) {
      let op: Op | undefined;
      for (let t = 0; t < 20 && op === undefined; t++) {
        const cls = this.pick(this.classes);
        if (cls === undefined) break;
        op = this.build(cls);
      }
      if (op === undefined) continue;
      op = this.refine(op);
      if (op.op === "stop") this.running = false;
      if (["stop", "restart", "kill9"].includes(op.op)) this.ops.push(op);
      else this.push(op);
      if (this.checkNext) this.ops.push({ op: "check", cls: "control" });
      this.tick();
      if (!this.checkNext && this.r() < (watching ? 0.3 : 0.4)) {
        this.ops.push({ op: "check", cls: "control" });
      }
      this.checkNext = false;
    }
    for (const p of [...this.m.locked.keys()]) this.push({ op: "unlock", cls: "perm", path: p });
    if (this.m.dstGone.size > 0) this.push({ op: "repair", cls: "dst-removed" });
    if (watching && !this.running) this.ops.push({ op: "start", cls: "offline" });
    this.ops.push({ op: "check", cls: "control" });
    return this.ops;
  }
}

/** Generates one sequence. */
export function generate(seed: number, options: GenOptions): Op[] {
  return new Gen(seed, options).run();
}
