import * as fs from "node:fs";
import * as path from "node:path";
import { DatabaseSync } from "node:sqlite";
import {
  causes,
  ClassifiedError,
  classify,
  isNoSpace,
  isSqliteError,
  SQLITE,
  sqliteCode,
} from "../src/errors.ts";
import { Store } from "../src/store/store.ts";
import { assert, assertEquals } from "./_assert.ts";

function coded(message: string, code: string, cause?: unknown): Error {
  return Object.assign(new Error(message, cause === undefined ? {} : { cause }), { code });
}

/** The error a statement throws once the database may not grow (SQLITE_FULL). */
function sqliteFull(): unknown {
  const db = new DatabaseSync(":memory:");
  db.exec("PRAGMA max_page_count = 2; CREATE TABLE t(a)");
  try {
    for (let i = 0; i < 100; i++) db.prepare("INSERT INTO t VALUES (?)").run("x".repeat(1000));
  } catch (e) {
    return e;
  } finally {
    db.close();
  }
  throw new Error("Expected the database to fill up");
}

Deno.test("classify() reads codes of the error itself", () => {
  assertEquals(classify(coded("x", "ECONNREFUSED")), "server");
  assertEquals(classify(coded("x", "EACCES")), "fatal");
  assertEquals(classify(new Deno.errors.PermissionDenied("x")), "fatal");
  assertEquals(classify(new Deno.errors.TimedOut("x")), "server");
  assertEquals(classify(new ClassifiedError("x", "fatal")), "fatal");
  assertEquals(classify(new Error("what")), "retry");
  assertEquals(classify("a string"), "retry");
  assertEquals(classify(undefined), "retry");
});

Deno.test("classify() follows the cause chain; the outermost error that says something decides", () => {
  const refused = coded("connect ECONNREFUSED", "ECONNREFUSED");
  assertEquals(classify(new Error("Cannot upload", { cause: refused })), "server");
  assertEquals(
    classify(new Error("a", { cause: new Error("b", { cause: coded("c", "EPERM") }) })),
    "fatal",
  );
  // A classified wrapper keeps its own kind.
  assertEquals(
    classify(new ClassifiedError("Cannot upload", "retry", { cause: refused })),
    "retry",
  );
  // The outer code wins over an inner one.
  assertEquals(classify(coded("outer", "EACCES", refused)), "fatal");
  // A cycle ends the walk.
  const a = new Error("a") as Error & { cause?: unknown };
  const b = new Error("b", { cause: a });
  a.cause = b;
  assertEquals(classify(a), "retry");
  assertEquals([...causes(a)].length, 2);
});

Deno.test("SQLite errors are recognised by code, also as a cause", () => {
  const full = sqliteFull();
  assert(isSqliteError(full));
  assertEquals(sqliteCode(full), SQLITE.FULL);
  assert(isNoSpace(full));
  const wrapped = new Error("Cannot record the sync", { cause: full });
  assert(isSqliteError(wrapped));
  assertEquals(sqliteCode(wrapped), SQLITE.FULL);
  assert(isNoSpace(wrapped));

  const db = new DatabaseSync(":memory:");
  db.exec("CREATE TABLE t(a UNIQUE)");
  db.prepare("INSERT INTO t VALUES (1)").run();
  let constraint: unknown;
  try {
    db.prepare("INSERT INTO t VALUES (1)").run();
  } catch (e) {
    constraint = e;
  }
  let syntax: unknown;
  try {
    db.exec("SELEC 1");
  } catch (e) {
    syntax = e;
  }
  db.close();
  assertEquals(sqliteCode(constraint), SQLITE.CONSTRAINT);
  assert(!isNoSpace(constraint));
  // exec() reports no code, but the error is still an SQLite one.
  assert(isSqliteError(syntax));
  assertEquals(sqliteCode(syntax), undefined);
  // Not SQLite: a plain error, whatever its message says.
  assert(!isSqliteError(new Error("database or disk is full")));
  assertEquals(sqliteCode(new Error("SQLITE_FULL")), undefined);
});

Deno.test("isNoSpace() recognises ENOSPC from Deno and node:fs, not other errors", () => {
  let denoErr: unknown;
  try {
    Deno.writeFileSync("/dev/full", new Uint8Array(8));
  } catch (e) {
    denoErr = e;
  }
  let nodeErr: unknown;
  try {
    fs.writeFileSync("/dev/full", "x");
  } catch (e) {
    nodeErr = e;
  }
  assert(isNoSpace(denoErr), String(denoErr));
  assert(isNoSpace(nodeErr), String(nodeErr));
  assert(isNoSpace(new Error("Cannot process", { cause: nodeErr })));
  assert(!isNoSpace(coded("x", "EACCES")));
  assert(!isNoSpace(new Error("No space left on device")), "messages are not codes");
});

Deno.test("a read-only store refuses writes with an SQLite error carrying SQLITE_READONLY", () => {
  const dir = Deno.makeTempDirSync();
  try {
    new Store(dir).close();
    const ro = new Store(dir, { readOnly: true });
    let err: unknown;
    try {
      ro.setRuntime("x", 1);
    } catch (e) {
      err = e;
    } finally {
      ro.close();
    }
    assert(isSqliteError(err), String(err));
    assertEquals(sqliteCode(err), SQLITE.READONLY);
  } finally {
    fs.rmSync(path.resolve(dir), { recursive: true });
  }
});
