/**
 * The intent a pick writes for the plain name of each upload (so that an
 * upload without processors starts without a commit of its own) never
 * outlives its job: when processors rename the file, or when the job ends
 * without writing (an unchanged file), the intent goes with the completion
 * and the server is not touched at the plain name.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals } from "../_assert.ts";
import { cli, localConfig, workspace, write } from "../_harness.ts";
import { files, intents } from "./_pick.ts";

Deno.test("pick intents: a renamed upload and an unchanged file leave no intent and nothing at the plain name", async () => {
  const ws = workspace("fc-pick-intents-");
  try {
    for (let i = 0; i < 20; i++) write(path.join(ws.src, `d${i % 3}`, `f${i}.css`), `a{b:${i}}`);
    localConfig(ws, {
      ruleBody: `<processorChain><processor name="unique_filename.MD5" /></processorChain>`,
    });
    const first = await cli(["sync", "--once", "--config", ws.config]);
    assertEquals(first.code, 0, first.stderr);
    const synced = files(ws.dst);
    assertEquals(synced.length, 20);
    assert(synced.every((f) => /^d\d\/f\d+_[0-9a-f]+\.css$/.test(f)), synced.join(", "));
    assertEquals(intents(ws.data), []);

    // New times, same content: every job ends as a skip after comparing hashes.
    const later = new Date(Date.now() + 5000);
    for (let i = 0; i < 20; i++) {
      fs.utimesSync(path.join(ws.src, `d${i % 3}`, `f${i}.css`), later, later);
    }
    const second = await cli(["sync", "--once", "--config", ws.config]);
    assertEquals(second.code, 0, second.stderr);
    assert(!/removed leftover|deleted /.test(second.stderr), second.stderr);
    assertEquals(files(ws.dst), synced);
    assertEquals(intents(ws.data), []);
  } finally {
    ws.cleanup();
  }
});

Deno.test("pick intents: plain uploads and deletes leave no intent", async () => {
  const ws = workspace("fc-pick-intents-");
  try {
    for (let i = 0; i < 50; i++) write(path.join(ws.src, `d${i % 5}`, `f${i}.txt`), `x${i}`);
    localConfig(ws);
    const first = await cli(["sync", "--once", "--config", ws.config]);
    assertEquals(first.code, 0, first.stderr);
    assertEquals(files(ws.dst).length, 50);
    assertEquals(intents(ws.data), []);
    for (let i = 0; i < 10; i++) fs.rmSync(path.join(ws.src, `d${i % 5}`, `f${i}.txt`));
    const second = await cli(["sync", "--once", "--config", ws.config], {});
    assertEquals(second.code, 0, second.stderr);
    assertEquals(files(ws.dst), files(ws.src));
    assertEquals(intents(ws.data), []);
  } finally {
    ws.cleanup();
  }
});

Deno.test("pick intents: two fleet nodes on one folder leave no intent and nothing removed", async () => {
  const ws = workspace("fc-pick-intents-");
  try {
    for (let i = 0; i < 200; i++) write(path.join(ws.src, `d${i % 5}`, `f${i}.txt`), `x${i}`);
    const store = `sqlite:${path.join(ws.root, "shared.db")}`;
    // Both nodes pick files whose leases they claimed ahead (their intents written at the pick)
    // and files the other node holds or has uploaded (put off, then recorded from its record).
    const nodes = ["n1", "n2"].map((node) => {
      const data = path.join(ws.root, `data-${node}`);
      const config = path.join(ws.root, `config-${node}.xml`);
      localConfig({ ...ws, data, config }, { settings: { store, node } });
      return { data, config };
    });
    const runs = await Promise.all(
      nodes.map((n) => cli(["sync", "--once", "--config", n.config])),
    );
    for (const r of runs) {
      assertEquals(r.code, 0, r.stderr);
      assert(!/removed leftover|deleted /.test(r.stderr), r.stderr);
    }
    assertEquals(files(ws.dst), files(ws.src));
    for (const n of nodes) assertEquals(intents(n.data), []);
  } finally {
    ws.cleanup();
  }
});
