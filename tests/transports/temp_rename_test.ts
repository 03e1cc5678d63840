import * as fs from "node:fs";
import * as path from "node:path";
import { type TempRenameSteps, uploadViaTemp } from "../../src/transports/temp_rename.ts";
import { isTempName } from "../../src/transports/paths.ts";
import { assert, assertEquals, assertRejects } from "../_assert.ts";

/** The steps of an upload into a local folder, recording what happened. */
function localSteps(content: string, calls: string[]): TempRenameSteps<number> {
  return {
    ensureDir: (dir) => {
      calls.push(`ensureDir ${path.basename(dir)}`);
      fs.mkdirSync(dir, { recursive: true });
      return Promise.resolve();
    },
    write: (tmp) => {
      calls.push("write");
      fs.writeFileSync(tmp, content);
      return Promise.resolve(content.length);
    },
    dirGone: (err) => (err as { code?: string }).code === "ENOENT",
    forgetDirs: () => calls.push("forgetDirs"),
    verify: (tmp, written) => {
      const size = fs.statSync(tmp).size;
      if (size !== written) throw new Error(`stored ${size}, wrote ${written}`);
      return Promise.resolve(size);
    },
    rename: (tmp, target) => {
      calls.push("rename");
      fs.renameSync(tmp, target);
      return Promise.resolve();
    },
    removeTemp: (tmp) => {
      calls.push("removeTemp");
      fs.rmSync(tmp, { force: true });
      return Promise.resolve();
    },
  };
}

function leftovers(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter(isTempName) : [];
}

Deno.test("uploadViaTemp writes a temp name next to the target, then renames it over", async () => {
  const root = Deno.makeTempDirSync();
  try {
    const target = path.join(root, "d", "a.txt");
    fs.mkdirSync(path.dirname(target));
    fs.writeFileSync(target, "old");
    const calls: string[] = [];
    const seen: string[] = [];
    const steps = localSteps("new content", calls);
    const write = steps.write;
    steps.write = (tmp) => {
      seen.push(tmp);
      assertEquals(
        fs.readFileSync(target, "utf8"),
        "old",
        "the target is untouched until the rename",
      );
      return write(tmp);
    };
    const size = await uploadViaTemp(target, new AbortController().signal, steps);
    assertEquals(size, 11);
    assertEquals(fs.readFileSync(target, "utf8"), "new content");
    assertEquals(path.dirname(seen[0]!), path.dirname(target));
    assert(isTempName(path.basename(seen[0]!)), `temp name ${seen[0]}`);
    assertEquals(calls, ["ensureDir d", "write", "rename"]);
    assertEquals(leftovers(path.dirname(target)), []);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

Deno.test("uploadViaTemp re-creates a directory that vanished after its check, once", async () => {
  const root = Deno.makeTempDirSync();
  try {
    const target = path.join(root, "gone", "b.txt");
    const calls: string[] = [];
    const steps = localSteps("x", calls);
    const ensure = steps.ensureDir;
    let removed = false;
    steps.ensureDir = async (dir) => {
      await ensure(dir);
      if (!removed) {
        removed = true; // pruned by someone else right after the check
        fs.rmSync(dir, { recursive: true });
      }
    };
    assertEquals(await uploadViaTemp(target, new AbortController().signal, steps), 1);
    assertEquals(calls, [
      "ensureDir gone",
      "write",
      "forgetDirs",
      "ensureDir gone",
      "write",
      "rename",
    ]);
    assertEquals(fs.readFileSync(target, "utf8"), "x");

    // Gone again on the second try: the error is the caller's, and nothing is left behind.
    const again: string[] = [];
    const steps2 = localSteps("y", again);
    steps2.ensureDir = (dir) => {
      again.push("ensureDir");
      fs.rmSync(dir, { recursive: true, force: true });
      return Promise.resolve();
    };
    await assertRejects(
      () => uploadViaTemp(path.join(root, "gone2", "c.txt"), new AbortController().signal, steps2),
      Error,
      "ENOENT",
    );
    assertEquals(again, ["ensureDir", "write", "forgetDirs", "ensureDir", "write", "removeTemp"]);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

Deno.test("uploadViaTemp removes the temp file when the check fails or the signal aborts", async () => {
  const root = Deno.makeTempDirSync();
  try {
    const dir = path.join(root, "d");
    const target = path.join(dir, "c.txt");
    fs.mkdirSync(dir);
    fs.writeFileSync(target, "old");

    const calls: string[] = [];
    const steps = localSteps("new", calls);
    steps.verify = () => Promise.reject(new Error("the server stored 2 bytes, expected 3"));
    await assertRejects(
      () => uploadViaTemp(target, new AbortController().signal, steps),
      Error,
      "stored 2 bytes",
    );
    assertEquals(calls, ["ensureDir d", "write", "removeTemp"]);
    assertEquals(leftovers(dir), []);
    assertEquals(fs.readFileSync(target, "utf8"), "old");

    const aborting = new AbortController();
    const calls2: string[] = [];
    const steps2 = localSteps("new", calls2);
    const verify = steps2.verify;
    steps2.verify = (tmp, n) => {
      aborting.abort(new Error("shutting down"));
      return verify(tmp, n);
    };
    await assertRejects(
      () => uploadViaTemp(target, aborting.signal, steps2),
      Error,
      "shutting down",
    );
    assertEquals(calls2, ["ensureDir d", "write", "removeTemp"]);
    assertEquals(leftovers(dir), []);
    assertEquals(fs.readFileSync(target, "utf8"), "old");
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
