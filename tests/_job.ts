/**
 * A queued upload job as the local queue hands it out, for tests of the
 * parts that take jobs (claims ahead, claims) without a queue.
 *
 * @module
 */
import { CREATED } from "../src/store/events.ts";
import type { Job } from "../src/store/store.ts";

/** A queued "created" job of server "cdn" from source "s", with `fields` over the defaults. */
export function queuedJob(fields: Partial<Job> & Pick<Job, "id" | "input_file">): Job {
  return {
    source: "s",
    server: "cdn",
    dest: "",
    event: CREATED,
    gen: 0,
    state: "queued",
    attempts: 0,
    requeues: 0,
    force: 0,
    last_error: null,
    error_kind: null,
    discovered_at: 0,
    ready_at: 0,
    ...fields,
  };
}
