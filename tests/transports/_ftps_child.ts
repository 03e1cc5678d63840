/**
 * Child process for ftps_reuse_test.ts: uploads one file through the ftp
 * transport with the settings given as JSON in the first argument (state
 * directory in the second) and prints `{"ok":true}` or the error's message
 * and kind as JSON. The test runs it without `--allow-ffi`, the way a user
 * might run the bundle, to see what it says when OpenSSL cannot be loaded.
 */
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { ClassifiedError } from "../../src/errors.ts";
import { logger } from "../../src/log.ts";
import { checkOptions } from "../../src/options.ts";
import "../../src/transports/mod.ts";
import { getTransportDef } from "../../src/transports/transport.ts";

const [settingsJson, stateDir] = Deno.args;
const def = getTransportDef("ftp")!;
const { values } = checkOptions(def.options, JSON.parse(settingsJson!));
const t = await def.create(values, {
  serverName: "child",
  log: logger("ftp:child"),
  maxConnections: 1,
  timeoutMs: 10_000,
  sourceRoots: [],
  stateDir: stateDir!,
});
const local = path.join(stateDir!, "x.txt");
await fs.writeFile(local, "x");
let result: Record<string, unknown>;
try {
  await t.put(local, "x.txt", {
    signal: new AbortController().signal,
    size: 1,
    unprocessed: false,
  });
  result = { ok: true };
} catch (err) {
  result = {
    error: (err as Error).message,
    kind: err instanceof ClassifiedError ? err.kind : undefined,
  };
} finally {
  await t.close();
}
Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(result)));
