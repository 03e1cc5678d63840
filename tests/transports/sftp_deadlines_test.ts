/**
 * The SFTP transport's request deadlines: one timer per connection fails
 * the requests that got no answer in time, and only when one did not.
 */
import { Deadlines } from "../../src/transports/sftp/deadlines.ts";
import { assert, assertEquals } from "../_assert.ts";

Deno.test("Deadlines fails every waiting request once the oldest is overdue, and ends the connection", async () => {
  let expired = 0;
  const failures: string[] = [];
  const d = new Deadlines(40, () => expired++);
  const answered = d.add(() => failures.push("answered"));
  d.done(answered);
  const gone = new Promise<void>((resolve) => {
    d.add((err) => {
      failures.push(`first: ${err.message} ${(err as { code?: string }).code}`);
      resolve();
    });
  });
  d.add((err) => failures.push(`second: ${err.message}`));
  // The deadlines' timer does not keep a process alive (a connection's socket does): this does.
  const alive = setInterval(() => {}, 1000);
  await gone;
  clearInterval(alive);
  assertEquals(expired, 1);
  assertEquals(failures, [
    "first: no answer within 40 ms ETIMEDOUT",
    "second: no answer within 40 ms",
  ]);
  d.stop();
});

Deno.test("Deadlines leaves answered requests alone and fails the waiting ones when stopped", async () => {
  let expired = 0;
  const failures: string[] = [];
  const d = new Deadlines(40, () => expired++);
  // Requests answered within the deadline, over several periods of the timer.
  for (let i = 0; i < 8; i++) {
    const id = d.add(() => failures.push(`request ${i}`));
    await new Promise((r) => setTimeout(r, 15));
    d.done(id);
  }
  assertEquals(failures, []);
  assertEquals(expired, 0);
  d.add((err) => failures.push(err.message));
  d.stop(new Error("connection closed"));
  assertEquals(failures, ["connection closed"]);
  assert(expired === 0, "a stop is not an expiry");
});
