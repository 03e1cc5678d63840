import { ClassifiedError } from "../../src/errors.ts";
import {
  callFailure,
  ConnectFailure,
  localReadFailure,
  maskSecrets,
} from "../../src/transports/_call_errors.ts";
import { assert, assertEquals } from "../_assert.ts";

const call = { action: "upload", prep: "to", rel: "css/a.css", server: "cdn" };
const words = {
  describe: (err: unknown) => `described: ${(err as Error).message}`,
  kind: () => "server" as const,
  scrub: (text: string) => maskSecrets(text, ["hunter2"]),
};

Deno.test("callFailure() gives a failed connection's reason and class", () => {
  const cause = new ConnectFailure("cdn", "cannot log in as fc", undefined, "auth");
  const e = callFailure(cause, call, words);
  assertEquals(e.message, 'Cannot upload "css/a.css" to server "cdn": cannot log in as fc');
  assertEquals(e.kind, "auth");
  assert(e.cause === cause);
});

Deno.test("callFailure() keeps an error already made for this server, wraps others", () => {
  const own = new ClassifiedError(
    'Cannot upload "x" to server "cdn": the server stored 3 bytes',
    "retry",
  );
  assert(callFailure(own, call, words) === own);
  const other = new ClassifiedError('Cannot reach server "other"', "fatal");
  const e = callFailure(other, call, words);
  assertEquals(e.message, `Cannot upload "css/a.css" to server "cdn": described: ${other.message}`);
  assertEquals(e.kind, "server");
});

Deno.test("callFailure() describes a protocol error with the secrets masked", () => {
  const e = callFailure(new Error("530 login hunter2 refused"), call, words);
  assertEquals(
    e.message,
    'Cannot upload "css/a.css" to server "cdn": described: 530 login *** refused',
  );
});

Deno.test("localReadFailure() names the local file and classes the error by its code", () => {
  const cause = Object.assign(new Error("permission denied"), { code: "EACCES" });
  const e = localReadFailure(cause, { rel: "a.css", server: "cdn", localPath: "/src/a.css" });
  assertEquals(
    e.message,
    'Cannot upload "a.css" to server "cdn": cannot read local file "/src/a.css": permission denied',
  );
  assert(e.cause === cause);
});

Deno.test("maskSecrets() masks every non-empty secret, everywhere", () => {
  assertEquals(maskSecrets("a pw b pw", ["pw", ""]), "a *** b ***");
  assertEquals(maskSecrets("nothing", []), "nothing");
});
