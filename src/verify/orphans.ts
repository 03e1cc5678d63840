/**
 * Verify, step 3: remote files below the destination paths the rules use
 * that no record accounts for are **orphaned**. `--repair` deletes them —
 * never a temp name, never a path a running upload has announced. Every
 * writer announces a remote path (an intent, or the record) before writing
 * it, so an upload that starts while an orphan is deleted is seen right
 * after the deletion, and its file is queued to be uploaded again.
 *
 * @module
 */
import { errorMessage } from "../errors.ts";
import { isLister } from "../transports/transport.ts";
import { isTempName } from "../util/temp_name.ts";
import { parseExtras, queueRepair, type ServerContext, sourceOf } from "./_context.ts";
import type { Problem } from "./report.ts";

/** The destination paths of the server's rules, without those below another one. */
function listRoots(c: ServerContext): string[] {
  const prefixes = [
    ...new Set(
      c.config.rules.flatMap((r) => r.destinations)
        .filter((d) => d.server === c.server.name)
        .map((d) => d.path),
    ),
  ].sort();
  return prefixes.filter((p) =>
    !prefixes.some((q) => q !== p && (q === "" || p.startsWith(q + "/")))
  );
}

/**
 * Lists the server (when the transport can) and reports remote files no
 * record, intent or expected upload (`expected`) accounts for.
 */
export async function checkOrphans(c: ServerContext, expected: Set<string>): Promise<void> {
  const { transport: t, sv, server } = c;
  if (!isLister(t)) return;
  const knownRemote = new Set<string>();
  for (const r of c.rows) {
    knownRemote.add(r.remote_path);
    for (const x of parseExtras(r.extras)) knownRemote.add(x);
  }
  const orphans: string[] = [];
  try {
    for (const prefix of listRoots(c)) {
      for await (const e of t.list(prefix, { signal: c.signal })) {
        sv.remoteFiles++;
        const base = e.path.slice(e.path.lastIndexOf("/") + 1);
        if (
          isTempName(base) || knownRemote.has(e.path) || c.intents.has(e.path) ||
          expected.has(e.path)
        ) continue;
        orphans.push(e.path);
      }
    }
  } catch (e) {
    sv.problems.push({
      kind: "error",
      reason: `Cannot list server "${server.name}": ${errorMessage(e)}`,
    });
  }
  for (const p of orphans) {
    // Confirm: recorded or announced since the snapshot means an upload is under way (both read
    // in one statement: an upload is recorded and its intent dropped in one commit).
    const inUse = () => c.read.remotePathRecordedOrAnnounced(server.name, p);
    if (inUse()) continue;
    const problem: Problem = {
      kind: "orphaned",
      remotePath: p,
      reason: "no synced file is recorded at this remote path",
    };
    if (c.opts.repair) {
      try {
        await t.delete(p, { signal: c.signal });
        c.report.repaired.deleted++;
        problem.repaired = "deleted";
        if (inUse()) {
          // An upload announced it (or recorded it) while we deleted: upload it again.
          const owner = c.read.remotePathOwner(server.name, p);
          const src = owner && sourceOf(c.config, owner.input_file);
          if (owner && src) queueRepair(c, owner, src);
        }
      } catch (e) {
        problem.repaired = `cannot delete: ${errorMessage(e)}`;
      }
    }
    sv.problems.push(problem);
  }
}
