/**
 * The decision core: what to do with one file at one destination, given
 * what is stored about it and what the source holds now. Pure: no I/O, no
 * clock; the worker gathers the inputs, calls {@linkcode plan}, and carries
 * the decision out. When a decision needs the file's content hash, the plan
 * says `hash-check`; the worker hashes the file and plans again with
 * {@linkcode PlanInput.contentMd5} set.
 *
 * @module
 */
import { DELETED, type FileEvent } from "../store/events.ts";

/** What the source holds at the job's path now. */
export type ObservedType =
  /** A regular file, or a symlink to one inside the source. */
  | "file"
  /** A directory: the file was replaced by a directory. */
  | "dir"
  /** A symlink that cannot be published (outside the source, dangling, a loop). */
  | "symlink"
  /** A FIFO, socket or device node: never opened. */
  | "special"
  /** Nothing. */
  | "missing";

/** The stat fields the planner compares. */
export interface Fingerprint {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
}

/** The source entry as the worker observed it. */
export interface Observed {
  type: ObservedType;
  /** Set when `type` is `file`. */
  stat?: Fingerprint;
}

/** What is recorded as synced for the file at this destination. */
export interface Stored extends Fingerprint {
  /** MD5 of what was uploaded (the processed output when processors ran). */
  md5: string | null;
  /** MD5 of the source file when it was recorded (null when unknown). */
  sourceMd5: string | null;
  /** Chain signature the record was made with. */
  chain: string | null;
}

/** The route of the file to this destination under the configuration in effect. */
export interface Route {
  /** Chain signature: processors, destination and the server's settings. */
  chain: string;
  /** Whether processors run (the uploaded content is not the source's). */
  processors: boolean;
}

/** A recorded file at the same destination that may be this file's old name. */
export interface MoveCandidate {
  inputFile: string;
  remotePath: string;
  size: number;
  mtimeMs: number;
  /** MD5 recorded for it (of the source content: move candidates are unprocessed). */
  md5: string | null;
  /** Whether its source path still exists: then it is not a rename. */
  sourceExists: boolean;
}

/** Everything {@linkcode plan} decides on. */
export interface PlanInput {
  /** The queued event (after merging). */
  event: FileEvent;
  /** 0: skip when unchanged; 1: compare content when the stat is unchanged; 2: always upload. */
  force: number;
  /** The source entry now. Not looked at for a DELETED job. */
  observed: Observed;
  /** Whether the source's root is present (on its file system). */
  rootPresent: boolean;
  /** Whether the delete guard holds this source's deletions. */
  held: boolean;
  /** Record of what is synced there, if any. */
  stored: Stored | undefined;
  /** Route under the current rules; undefined when no rule sends the file here now. */
  route: Route | undefined;
  /**
   * The record is racy: the file's mtime was not safely older than the
   * moment it was recorded, so an equal stat proves nothing.
   */
  racy: boolean;
  /** Whether the transport can move server-side. */
  canMove: boolean;
  /** A recorded file with this inode and size at this destination. */
  moveFrom: MoveCandidate | undefined;
  /** MD5 of the source file, once the worker hashed it after a `hash-check`. */
  contentMd5?: string;
}

/** A decision of {@linkcode plan}. */
export type Plan =
  /** Nothing to do. */
  | { action: "skip"; reason: string }
  /** Upload (process first when the route has processors). */
  | { action: "upload"; reason: string }
  /** Move the recorded copy of `from` server-side instead of uploading. */
  | { action: "move"; from: MoveCandidate; reason: string }
  /** Delete what is recorded at the destination. */
  | { action: "delete"; reason: string }
  /** Hash the source file and plan again with `contentMd5`. */
  | { action: "hash-check"; reason: string }
  /** Try again later: `delayMs` from now, because of `cause`. */
  | { action: "wait"; cause: "root-missing" | "held"; reason: string; delayMs: number };

/** How long a job waits for a missing source root or held deletions. */
export const WAIT_MS = 5000;

/**
 * Decides what to do with one job.
 *
 * @example
 * ```ts
 * import { plan } from "./plan.ts";
 * import { CREATED } from "../store/events.ts";
 * const p = plan({
 *   event: CREATED,
 *   force: 0,
 *   observed: { type: "file", stat: { size: 1, mtimeMs: 1, ctimeMs: 1, ino: 1 } },
 *   rootPresent: true,
 *   held: false,
 *   stored: undefined,
 *   route: { chain: "c", processors: false },
 *   racy: false,
 *   canMove: false,
 *   moveFrom: undefined,
 * });
 * if (p.action !== "upload") throw new Error(p.action);
 * ```
 */
export function plan(input: PlanInput): Plan {
  const { observed, stored, route } = input;
  const present = input.event !== DELETED && observed.type === "file" && observed.stat;
  if (!present) {
    // A deleted or unmounted source root looks like every file deleted: hold, never delete.
    if (!input.rootPresent) {
      return {
        action: "wait",
        cause: "root-missing",
        reason: "the source root is missing",
        delayMs: WAIT_MS,
      };
    }
    if (!stored) return { action: "skip", reason: "gone and never synced here" };
    if (input.held) {
      return {
        action: "wait",
        cause: "held",
        reason: "the delete guard holds deletions",
        delayMs: WAIT_MS,
      };
    }
    return {
      action: "delete",
      reason: input.event === DELETED ? "deleted" : `now ${describe(observed.type)}`,
    };
  }
  const stat = observed.stat!;
  if (!route) return { action: "skip", reason: "no rule sends it here any more" };
  if (
    stored && input.force < 2 && stored.chain === route.chain && sameStat(stored, stat)
  ) {
    if (input.force === 0 && !input.racy) return { action: "skip", reason: "unchanged" };
    // The stat is equal but proves nothing (a watcher saw a write, or the record is racy).
    const recorded = stored.sourceMd5 ?? (route.processors ? null : stored.md5);
    if (!recorded) return { action: "upload", reason: "content unknown; uploading again" };
    if (input.contentMd5 === undefined) {
      return { action: "hash-check", reason: "stat unchanged: compare content" };
    }
    return input.contentMd5 === recorded
      ? { action: "skip", reason: "content unchanged" }
      : { action: "upload", reason: "content changed with the same stat" };
  }
  const from = input.moveFrom;
  if (
    !stored && input.canMove && !route.processors && from && !from.sourceExists &&
    from.size === stat.size && from.mtimeMs === stat.mtimeMs
  ) {
    // A reused inode is not a move: the content must agree too.
    if (!from.md5) return { action: "upload", reason: "possible rename, content unknown" };
    if (input.contentMd5 === undefined) {
      return { action: "hash-check", reason: "possible rename: compare content" };
    }
    if (input.contentMd5 === from.md5) {
      return { action: "move", from, reason: "renamed" };
    }
    return { action: "upload", reason: "same inode, other content: not a rename" };
  }
  if (!stored) return { action: "upload", reason: "new here" };
  if (input.force >= 2) return { action: "upload", reason: "forced" };
  if (stored.chain !== route.chain) return { action: "upload", reason: "processing changed" };
  return { action: "upload", reason: "changed" };
}

/** Whether two fingerprints are equal (size, mtime, ctime, inode). */
export function sameStat(a: Fingerprint, b: Fingerprint): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs &&
    a.ino === b.ino;
}

function describe(t: ObservedType): string {
  return t === "dir"
    ? "a directory"
    : t === "symlink"
    ? "a symlink that is not published"
    : t === "special"
    ? "a special file"
    : "gone";
}

/** Something recorded at the destination where a new upload's path needs the other type. */
export interface Conflict {
  /** The recorded source file. */
  inputFile: string;
  /** Its remote path. */
  remotePath: string;
  /**
   * `ancestor`: a recorded file sits where the upload needs a directory;
   * `descendant`: recorded files sit below the path the upload needs as a file.
   */
  relation: "ancestor" | "descendant";
  /** What the source holds at the recorded file's path now. */
  observed: ObservedType;
}

/** A decision of {@linkcode planTypeConflict}. */
export type ConflictPlan =
  /** Nothing recorded is in the way: the failure is not ours to resolve. */
  | { action: "none" }
  /** Delete these recorded files (their source changed type or is gone), then retry. */
  | { action: "replace-type"; remove: Conflict[] }
  /** A live source file of the other type holds the path: fail with `reason`. */
  | { action: "fail"; reason: string };

/**
 * Decides how an upload that a destination refused can proceed when a
 * recorded file of the other type is in the way (a file `x` that became a
 * directory `x/`, or the reverse). Only recorded entries are removed, never
 * something the destination holds that fileconveyor did not put there.
 *
 * @example
 * ```ts
 * import { planTypeConflict } from "./plan.ts";
 * const p = planTypeConflict([
 *   { inputFile: "/s/x", remotePath: "x", relation: "ancestor", observed: "dir" },
 * ]);
 * if (p.action !== "replace-type") throw new Error(p.action);
 * ```
 */
export function planTypeConflict(conflicts: readonly Conflict[]): ConflictPlan {
  if (conflicts.length === 0) return { action: "none" };
  const live = conflicts.find((c) => c.observed === "file");
  if (live) {
    return {
      action: "fail",
      reason: `"${live.remotePath}" is also the destination of "${live.inputFile}", ${
        live.relation === "ancestor"
          ? "a file where a directory is needed"
          : "a directory's content"
      }`,
    };
  }
  // Files below first (so a directory empties), then files above.
  const order = (c: Conflict) => c.relation === "descendant" ? 0 : 1;
  return { action: "replace-type", remove: [...conflicts].sort((a, b) => order(a) - order(b)) };
}

/** Parent directories of a remote path, nearest last: `a/b/c` → `["a", "a/b"]`. */
export function remoteAncestors(remotePath: string): string[] {
  const parts = remotePath.split("/");
  const out: string[] = [];
  for (let i = 1; i < parts.length; i++) out.push(parts.slice(0, i).join("/"));
  return out;
}
