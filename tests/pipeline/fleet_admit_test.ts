/** The bound on a fleet node's uploads the shared store does not know yet (`fleet_admit.ts`). */
import {
  FREED_MAX,
  RecordAdmission,
  UNPUBLISHED_MAX,
  UNPUBLISHED_MAX_CHECKED,
  unpublishedMax,
  unpublishedMaxFor,
} from "../../src/pipeline/fleet_admit.ts";
import "../../src/transports/mod.ts";
import type { Job } from "../../src/store/store.ts";
import { assert, assertEquals } from "../_assert.ts";

const job = (id: number) => ({ id }) as Job;
const tick = () => new Promise((r) => setTimeout(r, 0));

Deno.test("RecordAdmission: admits below the bound, counting the outbox and the jobs recording", async () => {
  let outbox = UNPUBLISHED_MAX - 3;
  const a = new RecordAdmission({
    max: UNPUBLISHED_MAX,
    outboxSize: () => outbox,
    flush: () => Promise.resolve(),
  });
  for (let i = 1; i <= 3; i++) await a.admit(job(i));
  assertEquals(a.recording, 3);
  // Full: the next job waits until the outbox shrinks (a publish) and is asked again.
  let admitted = false;
  let flushes = 0;
  const b = new RecordAdmission({
    max: UNPUBLISHED_MAX,
    outboxSize: () => outbox,
    flush: () => {
      flushes++;
      if (flushes === 3) outbox -= 1;
      return Promise.resolve();
    },
  });
  for (let i = 1; i <= 3; i++) await b.admit(job(i));
  const p = b.admit(job(4)).then(() => (admitted = true));
  await p;
  assert(admitted);
  assertEquals(flushes, 3, "it published until there was room");
  assertEquals(b.recording, 4);
});

/**
 * Fills an admission of bound `max` with an empty outbox: the next job waits
 * until a recording job finishes (one that is not recording wakes nobody).
 */
async function waitsAtTheBound(max: number) {
  const a = new RecordAdmission({ max, outboxSize: () => 0, flush: () => Promise.resolve() });
  for (let i = 1; i <= max; i++) await a.admit(job(i));
  let admitted = false;
  const p = a.admit(job(max + 100)).then(() => (admitted = true));
  await tick();
  assertEquals(admitted, false, `the bound of ${max} holds`);
  a.finished(max + 999); // not recording: wakes nobody
  await tick();
  assertEquals(admitted, false);
  a.finished(1);
  await p;
  assertEquals(a.recording, max);
}

Deno.test("RecordAdmission: with an empty outbox a job waits for a recording job to finish", async () => {
  await waitsAtTheBound(UNPUBLISHED_MAX);
});

Deno.test("RecordAdmission: waiting jobs give their slots back, at most FREED_MAX at a time", async () => {
  const a = new RecordAdmission({
    max: UNPUBLISHED_MAX,
    outboxSize: () => 0,
    flush: () => Promise.resolve(),
  });
  for (let i = 1; i <= UNPUBLISHED_MAX; i++) await a.admit(job(i));
  let released = 0;
  const waiting = Array.from(
    { length: FREED_MAX + 3 },
    (_, i) => a.admit(job(100 + i), () => released++),
  );
  await tick();
  assertEquals(released, FREED_MAX, "only so many uploads done wait without their slots");
  for (let i = 1; i <= FREED_MAX + 3; i++) a.finished(i);
  await Promise.all(waiting);
});

Deno.test("RecordAdmission: a shared store out of reach does not hold the record back", async () => {
  const a = new RecordAdmission({
    max: UNPUBLISHED_MAX,
    outboxSize: () => UNPUBLISHED_MAX,
    flush: () => Promise.reject(new Error("unreachable")),
  });
  await a.admit(job(1));
  assertEquals(a.recording, 1, "recorded; the outbox keeps it until the store answers");
});

Deno.test("RecordAdmission: the bound is the node's, larger where every destination can be checked", async () => {
  assertEquals(unpublishedMax(false), UNPUBLISHED_MAX);
  assertEquals(unpublishedMax(true), UNPUBLISHED_MAX_CHECKED);
  assert(UNPUBLISHED_MAX_CHECKED > UNPUBLISHED_MAX);
  // A node's bound follows every destination it has: one that cannot be checked keeps it small.
  assertEquals(
    unpublishedMaxFor([{ transporter: "symlink_or_copy" }, { transporter: "s3" }]),
    UNPUBLISHED_MAX_CHECKED,
  );
  assertEquals(
    unpublishedMaxFor([{ transporter: "s3" }, { transporter: "sftp" }]),
    UNPUBLISHED_MAX,
  );
  assertEquals(unpublishedMaxFor([{ transporter: "ftp" }]), UNPUBLISHED_MAX);
  await waitsAtTheBound(UNPUBLISHED_MAX_CHECKED);
});
