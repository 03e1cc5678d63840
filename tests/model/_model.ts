/**
 * The model of a source tree for the model-based engine test: the
 * operations a user (or a hostile tree) can apply, their effect on the
 * model, and what the destination must hold for a given model.
 *
 * Paths are relative, `/`-separated JavaScript strings. A byte that is not
 * part of valid UTF-8 is written as the lone surrogate U+DC00 + byte
 * (Python's "surrogateescape"), so non-UTF-8 names travel through the model
 * unchanged; {@linkcode toBytes} turns such a path back into the real bytes.
 *
 * Destination semantics checked (README, docs/SECURITY.md): a regular file is
 * published with its content under the same relative path; hard links are
 * files; a symlink whose target resolves to a regular file inside the source
 * is published as a file holding the target's content, any other symlink
 * (to a directory, dangling, a loop, outside the source, to a special file)
 * is not published; FIFOs and sockets are never published; directories carry
 * no content of their own.
 *
 * @module
 */

/** Operation classes: each generated operation belongs to one. */
export const OP_CLASSES = [
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
] as const;

/** One operation class. */
export type OpClass = typeof OP_CLASSES[number];

/** The class of an op; `control` for quiescent points and daemon starts. */
export type Cls = OpClass | "control";

/** A file to create: path relative to a base, and content. */
export interface NewFile {
  rel: string;
  data: string;
}

/** One step of a sequence. Every op carries the class it was generated for. */
export type Op =
  /** Create or overwrite a regular file (the parent directory exists). */
  | { op: "write"; cls: Cls; path: string; data: string }
  /** Same-size rewrite in place with the old mtime restored ("racily clean"). */
  | { op: "racy"; cls: Cls; path: string; data: string }
  /** Unlink a non-directory entry. */
  | { op: "delete"; cls: Cls; path: string }
  /** Rename an entry; `to` is absent or a non-directory that is replaced. */
  | { op: "rename"; cls: Cls; from: string; to: string }
  /** Exchange two files through a temporary name inside the tree. */
  | { op: "swap"; cls: Cls; a: string; b: string }
  /** Replace a file by a directory holding files. */
  | { op: "file-to-dir"; cls: Cls; path: string; files: NewFile[] }
  /** Replace a directory (recursively) by a file. */
  | { op: "dir-to-file"; cls: Cls; path: string; data: string }
  /** `mkdir -p` of nested directories and files right away. */
  | { op: "mkdirp"; cls: Cls; base: string; files: NewFile[] }
  /** `rm -r` of a directory. */
  | { op: "rmr"; cls: Cls; path: string }
  /** Take permissions away (mode 000, or 0311 for a directory: no listing). */
  | { op: "lock"; cls: Cls; path: string; mode: number }
  /** Give the usual permissions back (0644 files, 0755 directories). */
  | { op: "unlock"; cls: Cls; path: string }
  | { op: "fifo"; cls: Cls; path: string }
  | { op: "socket"; cls: Cls; path: string }
  /** A hard link `to` of the file `from`. */
  | { op: "hardlink"; cls: Cls; from: string; to: string }
  /** A symlink (replacing a non-directory at `path`, if any); `target` as written in the link. */
  | { op: "symlink"; cls: Cls; path: string; target: string }
  /** Delete `old` and create `to` with content of the same size, on the inode `old` had. */
  | { op: "reuse"; cls: Cls; old: string; to: string; data: string }
  /** A directory removed from the destination behind the daemon's back. */
  | { op: "rmdst"; cls: Cls; path: string }
  /** `verify --repair`: queue what the destinations miss. */
  | { op: "repair"; cls: Cls }
  /** Quiescent point: wait (or sync once when stopped), then check the oracle. */
  | { op: "check"; cls: Cls }
  /** Stop the daemon cleanly (changes until `start` are unseen by any watcher). */
  | { op: "stop"; cls: Cls }
  | { op: "start"; cls: Cls }
  | { op: "restart"; cls: Cls }
  /** SIGKILL the daemon and start it again (CLI engine only). */
  | { op: "kill9"; cls: Cls };

/** A node of the model. */
export type Node =
  | { kind: "file"; ino: number }
  | { kind: "dir" }
  | { kind: "symlink"; target: string }
  | { kind: "fifo" }
  | { kind: "socket" };

/** Placeholder for the workspace directory beside the source in a symlink target. */
export const OUTSIDE = "@OUTSIDE@";

/** The model of a source tree. */
export class Model {
  readonly entries = new Map<string, Node>();
  readonly data = new Map<number, string>();
  /**
   * Files removed from the destination by `rmdst` and unchanged since, with
   * their content: nothing tells the daemon about them until `repair`.
   */
  readonly dstGone = new Map<string, string>();
  /** Locked paths and their mode. */
  readonly locked = new Map<string, number>();
  #ino = 1;

  clone(): Model {
    const m = new Model();
    for (const [k, v] of this.entries) m.entries.set(k, v);
    for (const [k, v] of this.data) m.data.set(k, v);
    for (const [k, v] of this.locked) m.locked.set(k, v);
    for (const [k, v] of this.dstGone) m.dstGone.set(k, v);
    m.#ino = this.#ino;
    return m;
  }

  get(p: string): Node | undefined {
    return this.entries.get(p);
  }

  isDir(p: string): boolean {
    return p === "" || this.entries.get(p)?.kind === "dir";
  }

  isFile(p: string): boolean {
    return this.entries.get(p)?.kind === "file";
  }

  /** Content of the file at `p`. */
  content(p: string): string | undefined {
    const n = this.entries.get(p);
    return n?.kind === "file" ? this.data.get(n.ino) : undefined;
  }

  /** Paths that share the inode of `p` (including `p`). */
  links(p: string): string[] {
    const n = this.entries.get(p);
    if (n?.kind !== "file") return [];
    return [...this.entries].filter(([, v]) => v.kind === "file" && v.ino === n.ino).map(([k]) =>
      k
    );
  }

  /** Entries strictly below `dir`. */
  under(dir: string): string[] {
    return [...this.entries.keys()].filter((k) => k.startsWith(dir + "/"));
  }

  /** Whether `p` is locked or lies below a locked directory. */
  lockedAt(p: string): boolean {
    for (const l of this.locked.keys()) if (p === l || p.startsWith(l + "/")) return true;
    return false;
  }

  newFile(p: string, data: string): void {
    const ino = this.#ino++;
    this.data.set(ino, data);
    this.entries.set(p, { kind: "file", ino });
  }

  remove(p: string): void {
    for (const k of [p, ...this.under(p)]) {
      this.entries.delete(k);
      this.locked.delete(k);
    }
  }

  move(from: string, to: string): void {
    const moved = [from, ...this.under(from)];
    const nodes = moved.map((k) => [k, this.entries.get(k)!] as const);
    const locks = moved.filter((k) => this.locked.has(k)).map((k) =>
      [k, this.locked.get(k)!] as const
    );
    this.remove(from);
    this.remove(to);
    for (const [k, v] of nodes) this.entries.set(to + k.slice(from.length), v);
    for (const [k, v] of locks) this.locked.set(to + k.slice(from.length), v);
  }

  /**
   * Resolves `p` through symlinks (in every component); returns the final
   * path inside the source, or undefined when it leaves the source, dangles
   * or loops.
   */
  resolve(p: string, depth = 0): string | undefined {
    if (depth > 40) return undefined;
    const parts = p.split("/");
    let cur = "";
    for (let i = 0; i < parts.length; i++) {
      const next = cur === "" ? parts[i]! : `${cur}/${parts[i]}`;
      const n = this.entries.get(next);
      if (n === undefined) return undefined;
      if (n.kind === "symlink") {
        if (n.target.startsWith("/") || n.target.startsWith(OUTSIDE)) return undefined;
        const joined = join(dirname(next), n.target);
        if (joined === undefined) return undefined;
        const r = this.resolve(joined, depth + 1);
        if (r === undefined) return undefined;
        cur = r;
      } else cur = next;
    }
    return cur;
  }

  /** The regular files the destination must hold: relative path → content. */
  expected(): Map<string, string> {
    const out = new Map<string, string>();
    for (const [p, n] of this.entries) {
      if (n.kind === "file") out.set(p, this.data.get(n.ino)!);
      else if (n.kind === "symlink") {
        const r = this.resolve(p);
        if (r !== undefined && this.isFile(r)) out.set(p, this.content(r)!);
      }
    }
    return out;
  }
}

/** Parent of a relative path ("" for the root). */
export function dirname(p: string): string {
  const i = p.lastIndexOf("/");
  return i < 0 ? "" : p.slice(0, i);
}

/** Joins a relative symlink target to a directory; undefined when it climbs above the root. */
export function join(dir: string, target: string): string | undefined {
  const out = dir === "" ? [] : dir.split("/");
  for (const seg of target.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      if (out.length === 0) return undefined;
      out.pop();
    } else out.push(seg);
  }
  return out.join("/");
}

/** Whether a path holds a byte that is not valid UTF-8 (see the module note). */
export function isRaw(p: string): boolean {
  return /[\uDC80-\uDCFF]/.test(p);
}

/** The bytes of a model path. */
export function toBytes(p: string): Uint8Array {
  const out: number[] = [];
  const enc = new TextEncoder();
  for (const ch of p) {
    const c = ch.charCodeAt(0);
    if (c >= 0xdc80 && c <= 0xdcff) out.push(c - 0xdc00);
    else out.push(...enc.encode(ch));
  }
  return new Uint8Array(out);
}

/** A model path from bytes (invalid UTF-8 bytes become lone surrogates). */
export function fromBytes(b: Uint8Array): string {
  let out = "";
  let i = 0;
  const dec = new TextDecoder("utf-8", { fatal: true });
  while (i < b.length) {
    const c = b[i]!;
    const len = c < 0x80 ? 1 : c >= 0xc2 && c < 0xe0 ? 2 : c >= 0xe0 && c < 0xf0 ? 3 : c >= 0xf0 &&
        c < 0xf5
      ? 4
      : 0;
    if (len > 0 && i + len <= b.length) {
      try {
        out += dec.decode(b.subarray(i, i + len));
        i += len;
        continue;
      } catch {
        // Not a valid sequence: escape the first byte.
      }
    }
    out += c < 0x80 ? String.fromCharCode(c) : String.fromCharCode(0xdc00 + c);
    i++;
  }
  return out;
}

/**
 * Applies an op to the model. Returns false (and leaves the model as it
 * was) when the op does not apply to this model, so a shrunk sequence
 * stays valid: the runner then skips it on the real tree too.
 */
export function applyToModel(m: Model, op: Op): boolean {
  const parentOk = (p: string) => m.isDir(dirname(p));
  switch (op.op) {
    case "write": {
      if (!parentOk(op.path)) return false;
      const n = m.get(op.path);
      if (n && n.kind !== "file") return false;
      if (n) m.data.set(n.ino, op.data);
      else m.newFile(op.path, op.data);
      return true;
    }
    case "racy": {
      const n = m.get(op.path);
      if (n?.kind !== "file" || m.data.get(n.ino)!.length !== op.data.length) return false;
      m.data.set(n.ino, op.data);
      return true;
    }
    case "delete":
      if (!m.get(op.path) || m.isDir(op.path)) return false;
      m.remove(op.path);
      return true;
    case "rename": {
      if (!m.get(op.from) || !parentOk(op.to) || op.from === op.to) return false;
      if (op.to.startsWith(op.from + "/")) return false;
      const t = m.get(op.to);
      if (t && (t.kind === "dir" || m.isDir(op.from))) return false;
      const f = m.get(op.from)!;
      // rename(2) between two links of one inode does nothing (POSIX).
      if (t?.kind === "file" && f.kind === "file" && t.ino === f.ino) return true;
      m.move(op.from, op.to);
      return true;
    }
    case "swap": {
      if (!m.isFile(op.a) || !m.isFile(op.b) || op.a === op.b) return false;
      const a = m.get(op.a)!;
      m.entries.set(op.a, m.get(op.b)!);
      m.entries.set(op.b, a);
      const la = m.locked.get(op.a), lb = m.locked.get(op.b);
      m.locked.delete(op.a);
      m.locked.delete(op.b);
      if (lb !== undefined) m.locked.set(op.a, lb);
      if (la !== undefined) m.locked.set(op.b, la);
      return true;
    }
    case "file-to-dir":
      if (!m.isFile(op.path)) return false;
      m.remove(op.path);
      m.entries.set(op.path, { kind: "dir" });
      for (const f of op.files) mkfile(m, `${op.path}/${f.rel}`, f.data);
      return true;
    case "dir-to-file":
      if (!m.isDir(op.path) || op.path === "") return false;
      m.remove(op.path);
      m.newFile(op.path, op.data);
      return true;
    case "mkdirp":
      if (m.get(op.base) && !m.isDir(op.base)) return false;
      for (const f of op.files) {
        if (!mkdirs(m, dirname(`${op.base}/${f.rel}`), true)) return false;
      }
      for (const f of op.files) mkfile(m, `${op.base}/${f.rel}`, f.data);
      return true;
    case "rmr":
      if (!m.isDir(op.path) || op.path === "") return false;
      m.remove(op.path);
      return true;
    case "lock": {
      const n = m.get(op.path);
      if (!n || (n.kind !== "file" && n.kind !== "dir")) return false;
      m.locked.set(op.path, op.mode);
      return true;
    }
    case "unlock":
      if (!m.locked.has(op.path)) return false;
      m.locked.delete(op.path);
      return true;
    case "fifo":
    case "socket":
      if (m.get(op.path) || !parentOk(op.path)) return false;
      m.entries.set(op.path, { kind: op.op });
      return true;
    case "hardlink": {
      const n = m.get(op.from);
      if (n?.kind !== "file" || m.get(op.to) || !parentOk(op.to)) return false;
      m.entries.set(op.to, n);
      return true;
    }
    case "symlink":
      if (!parentOk(op.path) || m.isDir(op.path)) return false;
      m.remove(op.path);
      m.entries.set(op.path, { kind: "symlink", target: op.target });
      return true;
    case "rmdst":
      if (!m.isDir(op.path) || op.path === "") return false;
      for (const [p, data] of m.expected()) if (p.startsWith(op.path + "/")) m.dstGone.set(p, data);
      return true;
    case "repair":
      m.dstGone.clear();
      return true;
    case "reuse":
      if (!m.isFile(op.old) || m.get(op.to) || !parentOk(op.to)) return false;
      {
        // The same inode under the new name (other hard links to it see the new content).
        const n = m.get(op.old) as { kind: "file"; ino: number };
        m.move(op.old, op.to);
        m.data.set(n.ino, op.data);
      }
      return true;
    default:
      return true;
  }
}

/** Creates the missing directories of `dir`; false when a non-directory is in the way. */
function mkdirs(m: Model, dir: string, dryRun = false): boolean {
  if (dir === "") return true;
  const parts = dir.split("/");
  for (let i = 1; i <= parts.length; i++) {
    const p = parts.slice(0, i).join("/");
    const n = m.get(p);
    if (n && n.kind !== "dir") return false;
    if (!n && !dryRun) m.entries.set(p, { kind: "dir" });
  }
  return true;
}

function mkfile(m: Model, p: string, data: string) {
  mkdirs(m, dirname(p));
  const n = m.get(p);
  if (n?.kind === "file") m.data.set(n.ino, data);
  else m.newFile(p, data);
}

/** One line per op, for failure reports. */
export function describe(ops: readonly Op[]): string {
  return ops.map((o, i) => {
    const { op, cls, ...rest } = o as Op & Record<string, unknown>;
    const args = Object.entries(rest).map(([k, v]) => `${k}=${show(v)}`).join(" ");
    return `${String(i).padStart(3)} ${op}${op === cls ? "" : ` [${cls}]`} ${args}`;
  }).join("\n");
}

function show(v: unknown): string {
  if (typeof v === "string") {
    const s = v.length > 24 ? `${v.slice(0, 12)}…(${v.length})` : v;
    return JSON.stringify(s).replace(/\\udc([89a-f][0-9a-f])/g, "\\x$1");
  }
  if (Array.isArray(v)) return `[${v.map((f) => show((f as NewFile).rel)).join(",")}]`;
  return JSON.stringify(v);
}
