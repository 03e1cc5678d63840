/**
 * Events and how two events on one queued file combine.
 *
 * @module
 */

/** A file appeared (the original's CREATED, 0x1). */
export const CREATED = 1;
/** A file changed (MODIFIED, 0x2). */
export const MODIFIED = 2;
/** A file disappeared (DELETED, 0x4). */
export const DELETED = 4;

/** One of {@linkcode CREATED}, {@linkcode MODIFIED}, {@linkcode DELETED}. */
export type FileEvent = typeof CREATED | typeof MODIFIED | typeof DELETED;

/** Human name of an event. */
export function eventName(e: number): string {
  return e === CREATED
    ? "created"
    : e === MODIFIED
    ? "modified"
    : e === DELETED
    ? "deleted"
    : `event ${e}`;
}

/**
 * The combination table: `MERGE[old][new]` is what a queued `old` event
 * becomes when `new` arrives for the same file and destination; null means
 * the two cancel out (a file created and deleted before it was synced).
 * The caller must not cancel work that is already running or a file that
 * was synced before: it turns null into DELETED then.
 *
 * | old \ new | CREATED  | MODIFIED | DELETED |
 * |-----------|----------|----------|---------|
 * | CREATED   | CREATED  | CREATED  | (none)  |
 * | MODIFIED  | MODIFIED | MODIFIED | DELETED |
 * | DELETED   | MODIFIED | MODIFIED | DELETED |
 */
export const MERGE: Readonly<Record<FileEvent, Readonly<Record<FileEvent, FileEvent | null>>>> = {
  [CREATED]: { [CREATED]: CREATED, [MODIFIED]: CREATED, [DELETED]: null },
  [MODIFIED]: { [CREATED]: MODIFIED, [MODIFIED]: MODIFIED, [DELETED]: DELETED },
  [DELETED]: { [CREATED]: MODIFIED, [MODIFIED]: MODIFIED, [DELETED]: DELETED },
};

/** Combines a queued event with a new one; see {@linkcode MERGE}. */
export function mergeEvents(old: FileEvent, next: FileEvent): FileEvent | null {
  return MERGE[old][next];
}
