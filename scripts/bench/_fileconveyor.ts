/**
 * The fileconveyor CLI as the benchmark runs it: `mod.ts` plus every
 * transport the benchmark needs registered (the S3 transport may not be in
 * `src/transports/mod.ts` yet; registering it twice is harmless).
 *
 * @module
 */
import "../../mod.ts";
import "../../src/transports/s3.ts";
import { main } from "../../src/cli/main.ts";

Deno.exit(await main(Deno.args));
