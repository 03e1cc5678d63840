import { checkOptions, type OptionSpec, parseSettings } from "../src/options.ts";
import { assertEquals } from "./_assert.ts";

const SPECS = [
  { name: "host", type: "string", required: true, help: "Host" },
  { name: "port", type: "integer", default: "21", help: "Port" },
  { name: "ratio", type: "number", help: "Ratio" },
  { name: "tls", type: "boolean", default: "false", help: "TLS" },
  { name: "passive", type: "boolean", help: "Passive mode" },
  { name: "mode", type: "enum", values: ["a", "b"], default: "a", help: "Mode" },
  { name: "root", type: "path", help: "Root" },
] as const satisfies readonly OptionSpec[];

Deno.test("parseSettings() types each value by its option type and fills defaults", () => {
  const { values, problems } = checkOptions(SPECS, {
    host: " example.com",
    port: " 2121 ",
    ratio: "0.5",
    tls: "Yes",
    mode: " B ",
  });
  assertEquals(problems, []);
  const s = parseSettings(SPECS, values);
  assertEquals(s, {
    host: " example.com",
    port: 2121,
    ratio: 0.5,
    tls: true,
    passive: undefined,
    mode: "b",
    root: undefined,
  });
  // The types follow the schema: these lines only compile with the right ones.
  const port: number = s.port;
  const tls: boolean = s.tls;
  const passive: boolean | undefined = s.passive;
  const host: string = s.host;
  assertEquals([port, tls, passive, host.trim()], [2121, true, undefined, "example.com"]);
});

Deno.test("parseSettings() reads every false spelling as false and defaults when unset", () => {
  for (const v of ["false", "no", "0", "off", "OFF"]) {
    assertEquals(parseSettings(SPECS, { host: "h", tls: v }).tls, false, v);
  }
  const s = parseSettings(SPECS, { host: "h" });
  assertEquals([s.port, s.tls, s.mode, s.ratio], [21, false, "a", undefined]);
});
