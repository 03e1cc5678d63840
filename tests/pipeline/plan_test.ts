/**
 * The planner over its whole input table, plus the scenarios of the hostile
 * trees (type changes, inode reuse, same-second rewrites) spelled out.
 */
import {
  type Conflict,
  type MoveCandidate,
  type Observed,
  type Plan,
  plan,
  type PlanInput,
  planTypeConflict,
  remoteAncestors,
  type Route,
  type Stored,
  WAIT_MS,
} from "../../src/pipeline/plan.ts";
import { CREATED, DELETED, type FileEvent, MODIFIED } from "../../src/store/events.ts";
import { assert, assertEquals } from "../_assert.ts";

const STAT = { size: 10, mtimeMs: 1000, ctimeMs: 1000, ino: 7 };
const CHANGED = { size: 11, mtimeMs: 2000, ctimeMs: 2000, ino: 7 };

// ---- the input table ----

const EVENTS: FileEvent[] = [CREATED, MODIFIED, DELETED];
const FORCES = [0, 1, 2];
const OBSERVED: Record<string, Observed> = {
  "file-same": { type: "file", stat: STAT },
  "file-changed": { type: "file", stat: CHANGED },
  dir: { type: "dir" },
  symlink: { type: "symlink" },
  special: { type: "special" },
  missing: { type: "missing" },
};
/** Source content now hashes to "A"; a processed upload to "P". */
const STORED: Record<string, Stored | undefined> = {
  none: undefined,
  // Recorded before source hashes were kept: md5 is of the upload.
  plain: { ...STAT, md5: "A", sourceMd5: null, chain: "c" },
  full: { ...STAT, md5: "P", sourceMd5: "A", chain: "c" },
  unknown: { ...STAT, md5: null, sourceMd5: null, chain: "c" },
  "other-chain": { ...STAT, md5: "A", sourceMd5: "A", chain: "old" },
};
const ROUTES: Record<string, Route | undefined> = {
  none: undefined,
  plain: { chain: "c", processors: false },
  processors: { chain: "c", processors: true },
};
const from = (o: Partial<MoveCandidate>): MoveCandidate => ({
  inputFile: "/s/old.txt",
  remotePath: "old.txt",
  size: STAT.size,
  mtimeMs: STAT.mtimeMs,
  md5: "A",
  sourceExists: false,
  ...o,
});
const MOVES: Record<string, MoveCandidate | undefined> = {
  none: undefined,
  match: from({}),
  "other-content": from({ md5: "B" }),
  "no-md5": from({ md5: null }),
  "source-exists": from({ sourceExists: true }),
  "other-mtime": from({ mtimeMs: 999 }),
};
const CONTENT: (string | undefined)[] = [undefined, "A", "B"];

interface Case {
  event: FileEvent;
  force: number;
  observed: string;
  root: boolean;
  held: boolean;
  stored: string;
  route: string;
  racy: boolean;
  canMove: boolean;
  move: string;
  content: string | undefined;
}

/**
 * The expected decision, written as the table the planner must follow
 * (rows in priority order), independently of the planner's code.
 */
function expected(c: Case): Plan["action"] {
  const present = c.event !== DELETED && c.observed.startsWith("file");
  if (!present) {
    if (!c.root) return "wait";
    if (c.stored === "none") return "skip";
    if (c.held) return "wait";
    return "delete";
  }
  if (c.route === "none") return "skip";
  const unchanged = c.observed === "file-same" && c.stored !== "none" &&
    c.stored !== "other-chain";
  if (unchanged && c.force < 2) {
    if (c.force === 0 && !c.racy) return "skip";
    // Which recorded hash can be compared with the source's content.
    const comparable: Record<string, string | null> = {
      plain: c.route === "processors" ? null : "A",
      full: "A",
      unknown: null,
    };
    const h = comparable[c.stored];
    if (!h) return "upload";
    if (c.content === undefined) return "hash-check";
    return c.content === h ? "skip" : "upload";
  }
  const moveable = c.stored === "none" && c.canMove && c.route === "plain" &&
    (c.move === "match" || c.move === "other-content" || c.move === "no-md5") &&
    c.observed === "file-same";
  if (moveable) {
    if (c.move === "no-md5") return "upload";
    if (c.content === undefined) return "hash-check";
    const h = c.move === "match" ? "A" : "B";
    return c.content === h ? "move" : "upload";
  }
  return "upload";
}

function input(c: Case): PlanInput {
  return {
    event: c.event,
    force: c.force,
    observed: OBSERVED[c.observed]!,
    rootPresent: c.root,
    held: c.held,
    stored: STORED[c.stored],
    route: ROUTES[c.route],
    racy: c.racy,
    canMove: c.canMove,
    moveFrom: MOVES[c.move],
    ...(c.content !== undefined ? { contentMd5: c.content } : {}),
  };
}

function* cases(): Generator<Case> {
  const bools = [false, true];
  for (const event of EVENTS) {
    for (const force of FORCES) {
      for (const observed of Object.keys(OBSERVED)) {
        for (const root of bools) {
          for (const held of bools) {
            for (const stored of Object.keys(STORED)) {
              for (const route of Object.keys(ROUTES)) {
                for (const racy of bools) {
                  for (const canMove of bools) {
                    for (const move of Object.keys(MOVES)) {
                      for (const content of CONTENT) {
                        yield {
                          event,
                          force,
                          observed,
                          root,
                          held,
                          stored,
                          route,
                          racy,
                          canMove,
                          move,
                          content,
                        };
                      }
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
  }
}

Deno.test("plan() follows the decision table for every combination of its inputs", () => {
  let n = 0;
  const seen = new Map<string, number>();
  for (const c of cases()) {
    const p = plan(input(c));
    const want = expected(c);
    if (p.action !== want) {
      throw new Error(`${JSON.stringify(c)}: got ${p.action} (${p.reason}), want ${want}`);
    }
    if (p.action === "move") assertEquals(p.from, MOVES[c.move]);
    if (p.action === "wait") {
      assertEquals(p.delayMs, WAIT_MS);
      assertEquals(p.cause, c.root ? "held" : "root-missing");
    }
    seen.set(p.action, (seen.get(p.action) ?? 0) + 1);
    n++;
  }
  assertEquals(n, 3 * 3 * 6 * 2 * 2 * 5 * 3 * 2 * 2 * 6 * 3);
  // Every decision is reachable.
  for (const a of ["skip", "upload", "move", "delete", "hash-check", "wait"]) {
    assert((seen.get(a) ?? 0) > 0, `no case decided ${a}`);
  }
});

// ---- scenarios, spelled out ----

const base: PlanInput = {
  event: MODIFIED,
  force: 0,
  observed: { type: "file", stat: STAT },
  rootPresent: true,
  held: false,
  stored: STORED.full,
  route: ROUTES.plain,
  racy: false,
  canMove: true,
  moveFrom: undefined,
};

Deno.test("plan() deletes the recorded file when its path became a directory, symlink or special file", () => {
  for (const type of ["dir", "symlink", "special", "missing"] as const) {
    const p = plan({ ...base, observed: { type } });
    assertEquals(p.action, "delete", type);
  }
  // Never synced there: nothing to delete.
  assertEquals(plan({ ...base, observed: { type: "dir" }, stored: undefined }).action, "skip");
});

Deno.test("plan() never deletes while the source root is missing or the guard holds deletions", () => {
  assertEquals(plan({ ...base, event: DELETED, rootPresent: false }), {
    action: "wait",
    cause: "root-missing",
    reason: "the source root is missing",
    delayMs: WAIT_MS,
  });
  const held = plan({ ...base, event: DELETED, held: true });
  assert(held.action === "wait" && held.cause === "held");
  assertEquals(plan({ ...base, event: DELETED }).action, "delete");
});

Deno.test("plan() of a delete racing a re-created file deletes: the new file's own event uploads it", () => {
  // The queued event is DELETED (the merge of a later CREATED turns it into MODIFIED).
  assertEquals(
    plan({ ...base, event: DELETED, observed: { type: "file", stat: STAT } }).action,
    "delete",
  );
  assertEquals(
    plan({ ...base, event: MODIFIED, observed: { type: "file", stat: STAT } }).action,
    "skip",
  );
});

Deno.test("plan() takes a reused inode for a move only when the content agrees (inode reuse)", () => {
  const reused: PlanInput = { ...base, stored: undefined, moveFrom: from({}) };
  assertEquals(plan(reused).action, "hash-check");
  assertEquals(plan({ ...reused, contentMd5: "A" }).action, "move");
  const other = plan({ ...reused, contentMd5: "Z" });
  assertEquals(other.action, "upload");
  assertEquals(other.reason, "same inode, other content: not a rename");
  // The old path still exists: a hard link or a copy, not a rename.
  assertEquals(plan({ ...reused, moveFrom: from({ sourceExists: true }) }).action, "upload");
  // Other size or mtime: never a move, and no hashing needed.
  assertEquals(plan({ ...reused, moveFrom: from({ size: 3 }) }).action, "upload");
  // Moving onto a name that has its own record: an upload over it.
  assertEquals(plan({ ...reused, stored: STORED.full, force: 2 }).action, "upload");
  // Processed files are never moved (their remote name and content derive from processing).
  assertEquals(
    plan({ ...reused, route: ROUTES.processors, contentMd5: "A" }).action,
    "upload",
  );
});

Deno.test("plan() compares content of a racy or written file, also when processors run (same-second rewrite)", () => {
  const racy: PlanInput = { ...base, route: ROUTES.processors, racy: true };
  assertEquals(plan(racy).action, "hash-check");
  assertEquals(plan({ ...racy, contentMd5: "A" }).action, "skip");
  assertEquals(plan({ ...racy, contentMd5: "B" }).action, "upload");
  const written: PlanInput = { ...base, route: ROUTES.processors, force: 1 };
  assertEquals(plan({ ...written, contentMd5: "B" }).action, "upload");
  // Without a recorded source hash the processed file's hash proves nothing: upload.
  assertEquals(plan({ ...written, stored: STORED.plain, contentMd5: "A" }).action, "upload");
  // Not racy, no write seen: an equal stat is trusted.
  assertEquals(plan({ ...base, route: ROUTES.processors }).action, "skip");
});

Deno.test("plan() re-uploads when processing changed and skips files no rule sends here", () => {
  assertEquals(plan({ ...base, stored: STORED["other-chain"] }).reason, "processing changed");
  assertEquals(plan({ ...base, route: undefined }).action, "skip");
  assertEquals(plan({ ...base, force: 2 }).reason, "forced");
});

// ---- type conflicts at the destination ----

const conflict = (o: Partial<Conflict>): Conflict => ({
  inputFile: "/s/x",
  remotePath: "x",
  relation: "ancestor",
  observed: "dir",
  ...o,
});

Deno.test("planTypeConflict() replaces recorded entries of the other type, files below first", () => {
  assertEquals(planTypeConflict([]), { action: "none" });
  // A file x became a directory x/: the recorded file x goes before uploads under x/.
  const up = planTypeConflict([conflict({})]);
  assertEquals(up, { action: "replace-type", remove: [conflict({})] });
  // A directory x/ became a file x: every recorded file below x/ goes before x is uploaded.
  const below = [
    conflict({
      inputFile: "/s/x/a",
      remotePath: "x/a",
      relation: "descendant",
      observed: "missing",
    }),
    conflict({
      inputFile: "/s/x/b/c",
      remotePath: "x/b/c",
      relation: "descendant",
      observed: "missing",
    }),
  ];
  const down = planTypeConflict([
    conflict({ relation: "ancestor", observed: "missing" }),
    ...below,
  ]);
  assert(down.action === "replace-type");
  assertEquals(down.remove.map((c) => c.remotePath), ["x/a", "x/b/c", "x"]);
});

Deno.test("planTypeConflict() refuses to remove what a live source file still needs", () => {
  for (const relation of ["ancestor", "descendant"] as const) {
    const p = planTypeConflict([conflict({ relation, observed: "file" })]);
    assertEquals(p.action, "fail", relation);
  }
});

Deno.test("remoteAncestors() lists parent paths from the root down", () => {
  assertEquals(remoteAncestors("a/b/c.txt"), ["a", "a/b"]);
  assertEquals(remoteAncestors("c.txt"), []);
});
