/**
 * What a `--dry-run` reports: each change the scan found, as the upload or
 * delete it would become at each destination. Nothing is queued or sent.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import { DELETED, eventName } from "../store/events.ts";
import type { FsChange } from "../watch/scanner.ts";
import type { Router } from "./routing.ts";

/** Logs every change a dry run would make; returns how many. */
export function reportDryRun(
  log: Logger,
  found: readonly FsChange[],
  router: Router,
  queuedBefore: number,
): number {
  let n = 0;
  for (const c of found) {
    for (const ch of router.changesFor(c)) {
      n++;
      const del = ch.event === DELETED;
      log.info(
        `would ${del ? "delete" : "upload"} "${c.rel}" ${
          del ? "from" : "to"
        } server "${ch.server}"${ch.dest ? ` under "${ch.dest}"` : ""} (${eventName(ch.event)})`,
      );
    }
  }
  log.info(`${n} changes found; ${queuedBefore} queued from earlier runs; nothing was changed`);
  return n;
}
