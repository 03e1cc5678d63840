/**
 * The smallest sequences that show each hostile-tree class, as fixed op
 * lists: quick to read, quick to run, and what a fix is checked against
 * first. The random sequences of `engine_test.ts` cover the combinations.
 *
 * @module
 */
import type { Driver } from "./_gen.ts";
import type { Op, OpClass } from "./_model.ts";

/** A named minimal sequence, run through one driver. */
export interface Minimal {
  cls: OpClass;
  driver: Driver;
  what: string;
  ops: Op[];
}

const check: Op = { op: "check", cls: "control" };
const start: Op = { op: "start", cls: "control" };

/** One or more per class that failed at some point. */
export const MINIMAL: Minimal[] = [
  {
    cls: "type-change",
    driver: "once",
    what: "a directory replaced by a file",
    ops: [
      { op: "mkdirp", cls: "mkdirp", base: "d", files: [{ rel: "x.txt", data: "inner" }] },
      check,
      { op: "dir-to-file", cls: "type-change", path: "d", data: "now a file" },
      check,
    ],
  },
  {
    cls: "type-change",
    driver: "watch",
    what: "a file replaced by a directory, then back, while watching",
    ops: [
      { op: "write", cls: "create", path: "f", data: "a file" },
      start,
      check,
      { op: "file-to-dir", cls: "type-change", path: "f", files: [{ rel: "in.txt", data: "in" }] },
      check,
      { op: "dir-to-file", cls: "type-change", path: "f", data: "a file again" },
      check,
    ],
  },
  {
    cls: "non-utf8",
    driver: "once",
    what: "a file whose name is not UTF-8",
    ops: [
      { op: "write", cls: "non-utf8", path: "\uDCFF\uDCFE.txt", data: "odd name" },
      { op: "write", cls: "create", path: "ok.txt", data: "fine" },
      check,
    ],
  },
  {
    cls: "racy",
    driver: "once",
    // The file's change time is the only trace left, and it is missed when it falls in the
    // same second as the recorded one: a few rounds make that near certain.
    what: "same-size rewrites with the old mtime restored",
    ops: [
      { op: "write", cls: "create", path: "r.txt", data: "version1" },
      check,
      ...[2, 3, 4, 5, 6].flatMap((v): Op[] => [
        { op: "racy", cls: "racy", path: "r.txt", data: `version${v}` },
        check,
      ]),
    ],
  },
  {
    cls: "hardlink",
    driver: "watch",
    what: "a change through one of two hard links",
    ops: [
      { op: "write", cls: "create", path: "h1.txt", data: "shared" },
      { op: "hardlink", cls: "hardlink", from: "h1.txt", to: "h2.txt" },
      start,
      check,
      { op: "write", cls: "hardlink", path: "h1.txt", data: "changed through h1" },
      check,
    ],
  },
  {
    cls: "symlink",
    driver: "watch",
    what: "a change to the target of a symlink inside the tree",
    ops: [
      { op: "write", cls: "create", path: "t.txt", data: "target" },
      { op: "symlink", cls: "symlink", path: "l.txt", target: "t.txt" },
      start,
      check,
      { op: "write", cls: "symlink", path: "t.txt", data: "target changed" },
      check,
    ],
  },
  {
    cls: "special",
    driver: "cli",
    what: "a FIFO appears while watching, then an ordinary file",
    ops: [
      { op: "write", cls: "create", path: "a.txt", data: "a" },
      start,
      check,
      { op: "fifo", cls: "special", path: "p" },
      { op: "write", cls: "create", path: "b.txt", data: "after the FIFO" },
      check,
    ],
  },
  {
    cls: "perm",
    driver: "cli",
    what: "a new file in a directory that becomes unreadable, then readable again",
    ops: [
      { op: "mkdirp", cls: "mkdirp", base: "d", files: [{ rel: "x.txt", data: "x" }] },
      start,
      check,
      { op: "write", cls: "perm", path: "d/y.txt", data: "new" },
      { op: "lock", cls: "perm", path: "d", mode: 0 },
      check,
      { op: "unlock", cls: "perm", path: "d" },
      check,
    ],
  },
  {
    cls: "perm",
    driver: "cli",
    what: "an unreadable file and directory in sync --once",
    ops: [
      { op: "mkdirp", cls: "mkdirp", base: "d", files: [{ rel: "x.txt", data: "x" }] },
      { op: "write", cls: "create", path: "s.txt", data: "secret" },
      { op: "lock", cls: "perm", path: "d", mode: 0 },
      { op: "lock", cls: "perm", path: "s.txt", mode: 0 },
      check,
      { op: "unlock", cls: "perm", path: "d" },
      { op: "unlock", cls: "perm", path: "s.txt" },
      check,
    ],
  },
  {
    cls: "inode-reuse",
    driver: "once",
    what: "a file deleted and another of the same size created at once",
    ops: [
      { op: "write", cls: "create", path: "old.txt", data: "old content" },
      check,
      { op: "reuse", cls: "inode-reuse", old: "old.txt", to: "new.txt", data: "new content" },
      check,
    ],
  },
  {
    cls: "racy",
    driver: "watch",
    what: "a same-size rewrite with the old mtime restored while the daemon is stopped",
    ops: [
      { op: "write", cls: "create", path: "r.txt", data: "version1" },
      start,
      check,
      ...[2, 3, 4].flatMap((v): Op[] => [
        { op: "stop", cls: "offline" },
        { op: "racy", cls: "racy", path: "r.txt", data: `version${v}` },
        { op: "start", cls: "offline" },
        check,
      ]),
    ],
  },
  {
    cls: "inode-reuse",
    driver: "watch",
    what: "a file deleted and another of the same size created at once, while watching",
    ops: [
      { op: "write", cls: "create", path: "old.txt", data: "old content" },
      start,
      check,
      { op: "reuse", cls: "inode-reuse", old: "old.txt", to: "new.txt", data: "new content" },
      check,
    ],
  },
  {
    cls: "dst-removed",
    driver: "watch",
    what: "a destination folder removed behind the daemon's back, then a new file in it",
    ops: [
      { op: "mkdirp", cls: "mkdirp", base: "d", files: [{ rel: "x.txt", data: "x" }] },
      start,
      check,
      { op: "rmdst", cls: "dst-removed", path: "d" },
      { op: "write", cls: "create", path: "d/y.txt", data: "into the removed folder" },
      check,
      { op: "repair", cls: "dst-removed" },
      check,
    ],
  },
];
