/** The configuration diff a reload applies. */
import "../../src/transports/mod.ts";
import { parseConfig } from "../../src/config/load.ts";
import { diffConfig } from "../../src/pipeline/reload.ts";
import { assertEquals } from "../_assert.ts";

function config(o: { location?: string; scan?: string; extra?: string; settings?: string }) {
  return parseConfig(
    `<?xml version="1.0"?>
<config>
  <sources>
    <source name="site" scanPath="${o.scan ?? "/tmp"}" />${o.extra ?? ""}
  </sources>
  <servers>
    <server name="local" transporter="symlink_or_copy">
      <location>${o.location ?? "/tmp/out"}</location>
      <url>http://cdn.test/</url>
    </server>
  </servers>
  <rules>
    <rule for="site" label="all"><destinations><destination server="local" /></destinations></rule>
  </rules>
  <settings><dataDir>/tmp/fc-reload-data</dataDir>${o.settings ?? ""}</settings>
</config>`,
    "test.xml",
  );
}

function live(c: ReturnType<typeof config>) {
  return new Map(c.servers.map((s) => [s.name, s]));
}

Deno.test("diffConfig() of an identical configuration changes nothing", () => {
  const a = config({});
  const d = diffConfig(a, config({}), live(a));
  assertEquals(d, {
    restartNeeded: [],
    retiredServers: [],
    freshSources: [],
    watchChanged: false,
    pidFileChanged: false,
  });
});

Deno.test("diffConfig() retires changed servers, names restart-only settings and new sources", () => {
  const a = config({});
  const b = config({
    location: "/tmp/elsewhere",
    extra: `\n    <source name="more" scanPath="/var/tmp" />`,
    settings: "<rescanInterval>60</rescanInterval><settleDelay>50</settleDelay>",
  });
  const d = diffConfig(a, b, live(a));
  assertEquals(d.retiredServers, ["local"]);
  assertEquals(d.restartNeeded, ["rescanInterval"]);
  assertEquals(d.freshSources.map((s) => s.name), ["more"]);
  assertEquals(d.watchChanged, true);
});
