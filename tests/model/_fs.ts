/**
 * The real side of the model-based test: applies ops to a source tree on
 * disk and reads trees back byte-exactly (names that are not UTF-8
 * included, through the shell, since Deno's path APIs cannot carry them).
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fromBytes, isRaw, type Model, type Op, OUTSIDE, toBytes } from "./_model.ts";

/** One entry of a tree on disk: f file, d directory, l symlink, p FIFO, s socket, ? other. */
export interface DiskEntry {
  type: "f" | "d" | "l" | "p" | "s" | "?";
  content?: string;
  target?: string;
}

/** Escapes a model path for bash's `printf %b` (bytes ≥ 0x80 and backslashes as \xHH). */
function esc(p: string): string {
  let out = "";
  for (const b of toBytes(p)) {
    out += b < 0x80 && b !== 0x5c
      ? String.fromCharCode(b)
      : `\\x${b.toString(16).padStart(2, "0")}`;
  }
  return out;
}

/** Runs a bash script whose arguments are byte paths, decoded into $P1, $P2, …; returns stdout. */
async function sh(script: string, paths: string[], stdin?: string): Promise<string> {
  const decode = paths.map((_, i) => `printf -v P${i + 1} '%b' "$${i + 1}"`).join("; ");
  const child = new Deno.Command("bash", {
    args: ["-c", `set -e; ${decode}; ${script}`, "bash", ...paths.map(esc)],
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const o = await child.output();
  const dec = new TextDecoder();
  if (o.code !== 0) {
    throw new Error(`bash ${script} ${paths.map(esc).join(" ")}: ${dec.decode(o.stderr)}`);
  }
  return dec.decode(o.stdout);
}

/** A source tree on disk driven by ops. */
export class SourceTree {
  readonly src: string;
  readonly outside: string;
  readonly #sockets = new Map<string, Deno.Listener>();

  constructor(src: string, outside: string) {
    this.src = src;
    this.outside = outside;
    fs.mkdirSync(outside, { recursive: true });
    fs.writeFileSync(path.join(outside, "outside.txt"), "outside the source\n");
  }

  #abs(p: string): string {
    return path.join(this.src, p);
  }

  async #write(p: string, data: string) {
    if (isRaw(p)) await sh(`cat > "$P1"`, [this.#abs(p)], data);
    else fs.writeFileSync(this.#abs(p), data);
  }

  async #mkdirp(p: string) {
    if (isRaw(p)) await sh(`mkdir -p "$P1"`, [this.#abs(p)]);
    else fs.mkdirSync(this.#abs(p), { recursive: true });
  }

  async #rm(p: string) {
    const s = this.#sockets.get(p);
    if (s) {
      this.#sockets.delete(p);
      s.close();
    }
    if (isRaw(p)) await sh(`rm -rf "$P1"`, [this.#abs(p)]);
    else fs.rmSync(this.#abs(p), { recursive: true, force: true });
  }

  async #rename(a: string, b: string) {
    if (isRaw(a) || isRaw(b)) await sh(`mv -T "$P1" "$P2"`, [this.#abs(a), this.#abs(b)]);
    else fs.renameSync(this.#abs(a), this.#abs(b));
  }

  async #files(base: string, files: { rel: string; data: string }[]) {
    for (const f of files) {
      const p = `${base}/${f.rel}`;
      await this.#mkdirp(path.posix.dirname(p));
      await this.#write(p, f.data);
    }
  }

  /** Applies one op (already validated against the model). */
  async apply(op: Op, model: Model): Promise<void> {
    switch (op.op) {
      case "write":
        return await this.#write(op.path, op.data);
      case "racy": {
        // touch -r keeps nanoseconds: the file looks exactly as before, except its content.
        const ref = path.join(this.outside, "racy-ref");
        await sh(`touch -r "$P1" "$P2"`, [this.#abs(op.path), ref]);
        await this.#write(op.path, op.data);
        await sh(`touch -r "$P2" "$P1"`, [this.#abs(op.path), ref]);
        return;
      }
      case "delete":
        return await this.#rm(op.path);
      case "rename": {
        const s = this.#sockets.get(op.from);
        await this.#rename(op.from, op.to);
        if (s) this.#sockets.delete(op.from);
        return;
      }
      case "swap": {
        const tmp = `${op.a}~swap`;
        await this.#rename(op.a, tmp);
        await this.#rename(op.b, op.a);
        await this.#rename(tmp, op.b);
        return;
      }
      case "file-to-dir":
        await this.#rm(op.path);
        await this.#mkdirp(op.path);
        return await this.#files(op.path, op.files);
      case "dir-to-file":
        await this.#rm(op.path);
        return await this.#write(op.path, op.data);
      case "mkdirp":
        return await this.#files(op.base, op.files);
      case "rmr":
        return await this.#rm(op.path);
      case "lock":
      case "unlock": {
        const mode = op.op === "lock" ? op.mode : model.isDir(op.path) ? 0o755 : 0o644;
        if (isRaw(op.path)) await sh(`chmod ${mode.toString(8)} "$P1"`, [this.#abs(op.path)]);
        else fs.chmodSync(this.#abs(op.path), mode);
        return;
      }
      case "fifo":
        await sh(`mkfifo "$P1"`, [this.#abs(op.path)]);
        return;
      case "socket":
        this.#sockets.set(
          op.path,
          Deno.listen({ transport: "unix", path: this.#abs(op.path) }),
        );
        return;
      case "hardlink":
        await sh(`ln "$P1" "$P2"`, [this.#abs(op.from), this.#abs(op.to)]);
        return;
      case "symlink": {
        await this.#rm(op.path);
        const target = op.target.replace(OUTSIDE, this.outside);
        await sh(`ln -s "$P1" "$P2"`, [target, this.#abs(op.path)]);
        return;
      }
      case "reuse":
        // File systems do not reuse an inode on demand: renaming and then rewriting in place
        // leaves exactly what a scan would see after a reuse (old name gone, a new name with
        // the old inode and size, a new mtime and other content).
        await this.#rename(op.old, op.to);
        return await this.#write(op.to, op.data);
      default:
        return;
    }
  }

  /**
   * Closes the sockets' listeners (each removes its socket file if still
   * there) and opens every FIFO read-write once, which releases a reader
   * blocked opening it (a hung engine), so the workspace can go.
   */
  close(model: Model): void {
    for (const [p, n] of model.entries) {
      if (n.kind !== "fifo" || isRaw(p)) continue;
      try {
        Deno.openSync(this.#abs(p), { read: true, write: true }).close();
      } catch {
        // Gone.
      }
    }
    for (const s of this.#sockets.values()) {
      try {
        s.close();
      } catch {
        // Closed.
      }
    }
    this.#sockets.clear();
  }

  /** Differences between the model and the real source tree ("" when equal): a check of the test itself. */
  async selfCheck(model: Model): Promise<string> {
    const disk = await walk(this.src);
    const out: string[] = [];
    const kinds = { file: "f", dir: "d", symlink: "l", fifo: "p", socket: "s" } as const;
    for (const [p, n] of model.entries) {
      const d = disk.get(p);
      if (!d) out.push(`missing on disk: ${p}`);
      else if (d.type !== kinds[n.kind]) {
        out.push(`type ${d.type} on disk, ${n.kind} in model: ${p}`);
      } else if (n.kind === "file" && d.content !== model.content(p)) out.push(`content: ${p}`);
      else if (
        n.kind === "symlink" && !isRaw(n.target) &&
        d.target !== n.target.replace(OUTSIDE, this.outside)
      ) {
        out.push(`link target: ${p}`);
      }
    }
    for (const p of disk.keys()) if (!model.get(p)) out.push(`only on disk: ${p}`);
    return out.join("\n");
  }
}

const latin1 = new TextDecoder("latin1");

/** Reads a tree: every entry below `root` by relative model path. */
export async function walk(root: string): Promise<Map<string, DiskEntry>> {
  const out = new Map<string, DiskEntry>();
  let odd = false;
  const visit = (dir: string, rel: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(dir)];
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.name.includes("\uFFFD")) odd = true;
      const p = path.join(dir, e.name);
      const r = rel === "" ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory) {
        out.set(r, { type: "d" });
        visit(p, r);
      } else if (e.isSymlink) {
        // A target that is not UTF-8 cannot be read back as a string: left uncompared.
        let target: string | undefined;
        try {
          target = Deno.readLinkSync(p);
        } catch {
          target = undefined;
        }
        out.set(r, { type: "l", ...(target === undefined ? {} : { target }) });
      } else if (e.isFile) {
        out.set(r, { type: "f", content: readText(p) });
      } else {
        const st = fs.lstatSync(p);
        out.set(r, { type: st.isFIFO() ? "p" : st.isSocket() ? "s" : "?" });
      }
    }
  };
  if (!fs.existsSync(root)) return out;
  visit(root, "");
  return odd ? await walkBytes(root) : out;
}

function readText(p: string): string {
  try {
    return latin1.decode(Deno.readFileSync(p));
  } catch (e) {
    return `<unreadable: ${(e as Error).message}>`;
  }
}

/** {@linkcode walk} through `find`, for trees with names Deno cannot represent. */
async function walkBytes(root: string): Promise<Map<string, DiskEntry>> {
  const o = await new Deno.Command("find", {
    args: [root, "-mindepth", "1", "-printf", "%y\\0%P\\0%l\\0"],
    stdout: "piped",
    stderr: "null",
  }).output();
  const parts: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i < o.stdout.length; i++) {
    if (o.stdout[i] === 0) {
      parts.push(o.stdout.subarray(start, i));
      start = i + 1;
    }
  }
  const out = new Map<string, DiskEntry>();
  for (let i = 0; i + 2 < parts.length + 1; i += 3) {
    const type = latin1.decode(parts[i]!) as DiskEntry["type"];
    const rel = fromBytes(parts[i + 1]!);
    const e: DiskEntry = { type: "fdlps".includes(type) ? type : "?" };
    if (type === "l") e.target = fromBytes(parts[i + 2]!);
    if (type === "f") {
      e.content = isRaw(rel)
        ? await sh(`cat "$P1"`, [path.join(root, rel)]).catch((x) => `<unreadable: ${x}>`)
        : readText(path.join(root, rel));
    }
    out.set(rel, e);
  }
  return out;
}
