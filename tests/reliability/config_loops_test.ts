/**
 * Configurations that would feed on their own output. A local destination
 * folder inside the source tree — written directly or reached through a
 * symlink — is excluded from the scan (and `validate` says so): watch mode
 * syncs each file once, with no nested copies of the output. One tree under
 * two source names, also through a symlink, is refused (exit 2, line and
 * element); the plain cases are in the bad-config corpus.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals } from "../_assert.ts";
import { cli, sleep, spawn, tree, workspace, write } from "../_harness.ts";
import { until } from "./_util.ts";

function config(file: string, scanPaths: string[], location: string, data: string) {
  fs.writeFileSync(
    file,
    `<config>
  <sources>
${scanPaths.map((p, i) => `    <source name="s${i}" scanPath="${p}" />`).join("\n")}
  </sources>
  <servers>
    <server name="local" transporter="symlink_or_copy">
      <location>${location}</location>
      <url>http://cdn.test/</url>
      <copy>true</copy>
    </server>
  </servers>
  <rules><rule for="s0" label="all"><destinations><destination server="local" path="out" /></destinations></rule></rules>
  <settings><dataDir>${data}</dataDir><settleDelay>20</settleDelay><rescanInterval>1</rescanInterval></settings>
</config>
`,
  );
}

for (const via of ["directly", "through a symlink"]) {
  Deno.test(`config loops: a destination inside the source (${via}) is excluded, not synced again`, async () => {
    const ws = workspace("fc-loop-");
    try {
      for (let i = 0; i < 4; i++) write(path.join(ws.src, `f${i}.txt`), `file ${i}\n`);
      let location = ws.src;
      if (via !== "directly") {
        location = path.join(ws.root, "link-to-src");
        fs.symlinkSync(ws.src, location);
      }
      config(ws.config, [ws.src], location, ws.data);
      const v = await cli(["validate", "--config", ws.config]);
      assertEquals(v.code, 0, v.stderr);
      const out = path.join(ws.src, "out");
      assert(
        v.stderr.includes(`Destination folder "${out}"`) && v.stderr.includes("excluded"),
        `validate does not say the folder is excluded:\n${v.stderr}`,
      );
      const d = spawn(["sync", "--config", ws.config]);
      try {
        await d.waitFor("Initial scan done");
        await until(() => tree(out).size === 4, 20_000, "the first sync");
        write(path.join(ws.src, "late.txt"), "late\n");
        await until(() => tree(out).has("late.txt"), 20_000, "the late file");
        // Several rescans (one a second) later nothing more appeared.
        await sleep(3000);
        assertEquals(
          [...tree(out).keys()].sort(),
          ["f0.txt", "f1.txt", "f2.txt", "f3.txt", "late.txt"],
        );
      } finally {
        assertEquals(await d.stop(), 0, d.log().slice(-2000));
      }
    } finally {
      ws.cleanup();
    }
  });
}

Deno.test("config loops: one tree under two source names through a symlink is refused", async () => {
  const ws = workspace("fc-loop-twice-");
  try {
    const alias = path.join(ws.root, "alias");
    fs.symlinkSync(ws.src, alias);
    config(ws.config, [ws.src, alias], ws.dst, ws.data);
    for (const args of [["validate"], ["sync", "--once"]]) {
      const r = await cli([...args, "--config", ws.config]);
      assertEquals(r.code, 2, r.stderr);
      assert(
        r.stderr.includes(
          `${ws.config}:4: config/sources/source["s1"]@scanPath: scanPath of source "s1" is the same folder as that of source "s0"`,
        ),
        r.stderr,
      );
    }
    assert(!fs.existsSync(ws.data), "sync wrote state for a refused configuration");
  } finally {
    ws.cleanup();
  }
});
