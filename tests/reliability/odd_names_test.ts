/**
 * Hostile and odd file names (unicode NFC and NFD, spaces, `#?%&+;=`,
 * leading dashes, a newline, backslashes, 255-byte names, very deep paths,
 * names that differ only by case) reach every destination — local, SFTP and
 * S3 — with a correctly encoded URL (`fileconveyor url`), or fail alone with
 * a clear reason in `status`.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals } from "../_assert.ts";
import { cli, type Workspace, workspace, write } from "../_harness.ts";
import { hasTransport, rcloneList, type Remote, s3Remote, sftpRemote } from "./_remote.ts";
import { run, start, until } from "./_util.ts";

/** Relative source paths, each a separate file. */
function names(): string[] {
  const deep = Array.from({ length: 40 }, (_, i) => `level${i}`).join("/");
  const veryDeep = Array.from({ length: 110 }, (_, i) => `very-deep-directory-${i}`).join("/");
  return [
    "café.txt".normalize("NFC"),
    "café-nfd.txt".normalize("NFD"),
    "日本語/ファイル.txt",
    "with space.txt",
    "dir with space/  two  spaces .txt",
    "h#sh?q%p+&;=.txt",
    "100%25.txt",
    "-leading-dash.txt",
    "--double-dash.txt",
    "new\nline.txt",
    "tab\there.txt",
    "quote'\"`$(x).txt",
    "back\\slash.txt",
    "back/slash.txt",
    "..dots.txt",
    "emoji-😀.txt",
    "a".repeat(251) + ".txt",
    "日".repeat(83) + "x.txt" + "a",
    "Readme.TXT",
    "README.txt",
    "readme.txt",
    `${deep}/deep.txt`,
    `${veryDeep}/too-deep-for-s3.txt`,
  ];
}

function config(ws: Workspace, localUrl: string, remotes: Remote[]) {
  fs.writeFileSync(
    ws.config,
    `<config>
  <sources><source name="site" scanPath="${ws.src}" /></sources>
  <servers>
    <server name="local" transporter="symlink_or_copy">
      <location>${ws.dst}</location>
      <url>${localUrl}</url>
      <copy>true</copy>
    </server>
    ${remotes.map((r) => r.serverXml(r.kind)).join("\n    ")}
  </servers>
  <rules>
    <rule for="site" label="all">
      <destinations>
        <destination server="local" />
        ${remotes.map((r) => `<destination server="${r.kind}" path="odd" />`).join("\n        ")}
      </destinations>
    </rule>
  </rules>
  <settings>
    <dataDir>${ws.data}</dataDir>
    <settleDelay>20</settleDelay>
    <retryFailAfter>1</retryFailAfter>
  </settings>
</config>
`,
  );
}

/** The path part of `url` after `base`, decoded segment by segment. */
function decodeAfter(url: string, base: string): string {
  assert(url.startsWith(base), `${url} does not start with ${base}`);
  const rest = url.slice(base.length);
  // Every reserved character must be encoded: no raw ?, #, space, newline or backslash.
  assert(!/[?#\s\\"'`]/.test(rest), `unencoded character in ${JSON.stringify(url)}`);
  return rest.split("/").map(decodeURIComponent).join("/");
}

Deno.test("odd names: every destination gets every name with a correct URL, or the file fails alone with a reason", async () => {
  const ws = workspace("fc-names-");
  const remotes: Remote[] = [];
  if (hasTransport("sftp")) remotes.push(await sftpRemote());
  if (hasTransport("s3")) remotes.push(await s3Remote());
  // The local destination is served over HTTP, so its URLs are fetched for real.
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const p = new URL(req.url).pathname.split("/").map(decodeURIComponent).join("/");
    const file = path.join(ws.dst, p);
    if (!file.startsWith(ws.dst + "/") || !fs.existsSync(file)) {
      return new Response("no", { status: 404 });
    }
    return new Response(fs.readFileSync(file));
  });
  const localUrl = `http://127.0.0.1:${server.addr.port}/`;
  const d = (() => {
    for (const n of names()) write(path.join(ws.src, n), `content of ${JSON.stringify(n)}\n`);
    config(ws, localUrl, remotes);
    return start(["sync", "--config", ws.config]);
  })();
  try {
    const all = names();
    const expected = all.length * (1 + remotes.length);
    // Done when every (file, server) is synced or failed.
    await until(
      async () => {
        const st = JSON.parse((await cli(["status", "--config", ws.config, "--json"])).stdout) as {
          queue: { queued: number };
          servers: { synced: number; failed: number }[];
        };
        const done = st.servers.reduce((a, s) => a + s.synced + s.failed, 0);
        return st.queue.queued === 0 && done === expected;
      },
      90_000,
      "every file synced or failed",
      500,
    );
    const st = JSON.parse((await cli(["status", "--config", ws.config, "--json"])).stdout) as {
      failures: { file: string; server: string; error: string; state: string }[];
    };
    const failed = new Map(
      st.failures.map((f) => [`${f.server}\0${path.relative(ws.src, f.file)}`, f]),
    );
    const outcome: string[] = [];
    const problems: string[] = [];
    const urls = await Promise.all(all.map(async (n) => {
      const r = await run(["url", "--config", ws.config, "--json", path.join(ws.src, n)]);
      return r.code === 0 ? JSON.parse(r.stdout) as { server: string; url: string }[] : [];
    }));
    const remoteNames = new Map<string, Set<string>>();
    for (const r of remotes) {
      remoteNames.set(r.kind, new Set((await rcloneList(r, "odd")).map((f) => f.Path)));
    }
    for (const [i, n] of all.entries()) {
      const content = `content of ${JSON.stringify(n)}\n`;
      for (const server of ["local", ...remotes.map((r) => r.kind)]) {
        const f = failed.get(`${server}\0${n}`);
        const u = urls[i]!.find((x) => x.server === server)?.url;
        if (f) {
          outcome.push(
            `${server}: FAILED ${JSON.stringify(n).slice(0, 60)}: ${f.error.slice(0, 160)}`,
          );
          // Fails alone, with a reason that names the file and the server.
          if (!f.error.includes(`server "${server}"`) || f.error.length < 30) {
            problems.push(
              `${server} ${JSON.stringify(n)}: unclear reason ${JSON.stringify(f.error)}`,
            );
          }
          if (u) problems.push(`${server} ${JSON.stringify(n)}: failed but has a URL`);
          continue;
        }
        if (!u) {
          problems.push(`${server} ${JSON.stringify(n)}: neither synced nor failed`);
          continue;
        }
        if (server === "local") {
          const rel = decodeAfter(u, localUrl);
          assertEquals(rel, n, "URL of the local copy");
          const res = await fetch(u);
          const body = await res.text();
          if (res.status !== 200 || body !== content) {
            problems.push(`local ${JSON.stringify(n)}: GET ${u} gave ${res.status}`);
          }
        } else {
          const remote = remotes.find((r) => r.kind === server)!;
          const base = server === "sftp"
            ? `https://sftp.cdn.test/${(remote as { dir?: string }).dir}/odd/`
            : `https://s3.cdn.test/${(remote as { bucket?: string }).bucket}/odd/`;
          const rel = decodeAfter(u, base);
          if (rel !== n) {
            problems.push(
              `${server}: URL ${u} decodes to ${JSON.stringify(rel)}, not ${JSON.stringify(n)}`,
            );
          }
          if (!remoteNames.get(server)!.has(n)) {
            problems.push(`${server} ${JSON.stringify(n)}: recorded but rclone does not list it`);
          }
        }
      }
    }
    // Names that only differ by normalization or case stay distinct everywhere they synced.
    for (const [server, set] of remoteNames) {
      for (
        const n of [
          "café.txt".normalize("NFC"),
          "Readme.TXT",
          "README.txt",
          "readme.txt",
          "back\\slash.txt",
        ]
      ) {
        if (!failed.has(`${server}\0${n}`) && !set.has(n)) {
          problems.push(`${server}: ${JSON.stringify(n)} missing`);
        }
      }
    }
    Deno.stderr.writeSync(
      new TextEncoder().encode(`odd names outcome:\n  ${outcome.join("\n  ") || "all synced"}\n`),
    );
    assertEquals(problems, []);
    // Local and SFTP keep every name; only S3 may refuse the 2.5 KB deep path (1024-byte keys).
    const allowed = (k: string) => k.startsWith("s3\0") && k.includes("too-deep-for-s3");
    const unexpected = [...failed.keys()].filter((k) => !allowed(k));
    assertEquals(unexpected.map((k) => k.replace("\0", ": ")), [], "unexpected failures");
    // The daemon is still fine and in sync.
    const v = await cli(["verify", "--config", ws.config, "--json"]);
    const rep = JSON.parse(v.stdout) as { servers: { problems: { kind: string }[] }[] };
    const unexpectedProblems = rep.servers.flatMap((s) => s.problems).filter((p) =>
      p.kind !== "missing"
    );
    assertEquals(unexpectedProblems, []);
  } finally {
    await d.stop();
    await server.shutdown();
    for (const r of remotes) await r.cleanup();
    ws.cleanup();
  }
});
