/**
 * The web application databases, read the way the Drupal 7 / Backdrop CDN
 * module reads them: PHP with PDO SQLite, as the web server's user
 * (`www-data`) with group read access only, while the daemon runs, after
 * SIGTERM, after kill -9 and after a restart. Keys are built as the module
 * builds them: `realpath('.') . '/' . $path`, with `public://` files
 * percent-encoded; the files directory is a symlink out of the docroot.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { assert, assertEquals } from "../_assert.ts";
import { workspace, write } from "../_harness.ts";
import { start, until } from "../reliability/_util.ts";

const PHP_SCRIPT = path.resolve(import.meta.dirname!, "../testdata/webapp/cdn_lookup.php");

interface Lookup {
  kind: "raw" | "public";
  path: string;
}

interface PhpRound {
  lookups?: Record<string, { url: string; server: string }[]>;
  counts?: { count: number; server: string }[];
  queued?: number;
  inPipeline?: number;
}

/** Installs PHP with PDO SQLite from Debian when missing (as scripts/test.sh does). */
async function ensurePhp(): Promise<void> {
  const has = async () => {
    try {
      const out = await new Deno.Command("php", { args: ["-m"], stdout: "piped" }).output();
      return out.code === 0 && /^pdo_sqlite$/m.test(new TextDecoder().decode(out.stdout));
    } catch {
      return false;
    }
  };
  if (await has()) return;
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  await new Deno.Command("apt-get", { args: ["update", "-qq"], env }).output();
  await new Deno.Command("apt-get", {
    args: ["install", "-y", "-qq", "--no-install-recommends", "php-cli", "php-sqlite3"],
    env,
  }).output();
  assert(await has(), "php-cli and php-sqlite3 could not be installed");
}

/** Runs the PHP client as www-data (no capabilities, only its own groups). */
async function php(
  request: { root: string; db: string; files: Lookup[]; rounds?: number; pauseMs?: number },
  dir: string,
): Promise<{ user: string; errors: string[]; rounds: PhpRound[] }> {
  const req = path.join(dir, `request-${crypto.randomUUID()}.json`);
  fs.writeFileSync(req, JSON.stringify(request));
  fs.chmodSync(req, 0o644);
  const out = await new Deno.Command("runuser", {
    args: ["-u", "www-data", "--", "php", PHP_SCRIPT, req],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr) + text);
  return JSON.parse(text);
}

Deno.test("the Drupal CDN module's lookups answer as www-data: running, stopped, killed, restarted", async () => {
  await ensurePhp();
  const ws = workspace("fc-webapp-");
  // www-data must be able to reach the data directory and the docroot.
  fs.chmodSync(ws.root, 0o711);
  const root = ws.src; // the Drupal root
  const filesReal = path.join(ws.root, "files-real");
  try {
    write(path.join(root, "misc", "drupal.js"), "var d;");
    write(path.join(root, "sites/all/themes/t/style.css"), "body{}");
    write(path.join(root, "sites/all/themes/t/img/a b.png"), "png");
    write(path.join(root, "sites/all/themes/t/ünï çødé.css"), "p{}");
    write(path.join(filesReal, "my logo.png"), "logo");
    write(path.join(filesReal, "café Ünïcode.jpg"), "jpg");
    write(path.join(filesReal, "(odd)!'*~.gif"), "gif");
    write(path.join(filesReal, "sub dir/x+y=z.txt"), "txt");
    fs.mkdirSync(path.join(root, "sites/default"), { recursive: true });
    fs.symlinkSync(filesReal, path.join(root, "sites/default/files"));
    fs.mkdirSync(ws.data, { mode: 0o700 });
    fs.writeFileSync(
      ws.config,
      `<?xml version="1.0" encoding="UTF-8"?>
<config>
  <sources>
    <source name="drupal" scanPath="${root}" documentRoot="${root}" basePath="/" />
    <source name="files" scanPath="${root}/sites/default/files" documentRoot="${root}" basePath="/" />
  </sources>
  <servers>
    <server name="local" transporter="symlink_or_copy">
      <location>${ws.dst}</location>
      <url>http://cdn.test/</url>
    </server>
  </servers>
  <rules>
    <rule for="drupal" label="site"><destinations><destination server="local" path="site" /></destinations></rule>
    <rule for="files" label="files"><destinations><destination server="local" path="files" /></destinations></rule>
  </rules>
  <settings>
    <dataDir>${ws.data}</dataDir>
    <settleDelay>20</settleDelay>
    <syncedFilesDbGroup>www-data</syncedFilesDbGroup>
  </settings>
</config>
`,
    );
    const files: Lookup[] = [
      { kind: "raw", path: "misc/drupal.js" },
      { kind: "raw", path: "sites/all/themes/t/style.css" },
      { kind: "raw", path: "sites/all/themes/t/img/a b.png" },
      { kind: "raw", path: "sites/all/themes/t/ünï çødé.css" },
      { kind: "public", path: "my logo.png" },
      { kind: "public", path: "café Ünïcode.jpg" },
      { kind: "public", path: "(odd)!'*~.gif" },
      { kind: "public", path: "sub dir/x+y=z.txt" },
      // Managed files are also linked by their raw path (e.g. in a theme's CSS).
      { kind: "raw", path: "sites/default/files/my logo.png" },
    ];
    const db = path.join(ws.data, "synced_files.db");
    const request = { root, db, files };

    /** The URL the daemon recorded for each lookup (read as root from its own database). */
    const expected = () => {
      const main = new DatabaseSync(path.join(ws.data, "fileconveyor.db"), { readOnly: true });
      try {
        const q = main.prepare("SELECT url FROM synced_files WHERE input_file = ?");
        return Object.fromEntries(files.map((f) => {
          const real = f.kind === "public"
            ? path.join(filesReal, f.path)
            : fs.realpathSync(path.join(root, f.path));
          return [`${f.kind}:${f.path}`, (q.get(real) as { url: string } | undefined)?.url];
        }));
      } finally {
        main.close();
      }
    };
    /** Every lookup answers the recorded URL on server "local"; no exception. */
    const check = async (when: string, rounds = 1) => {
      const r = await php({ ...request, rounds, pauseMs: 20 }, ws.root);
      assertEquals(r.user, "www-data");
      assertEquals(r.errors, [], `${when}: PHP errors`);
      const want = expected();
      for (const round of r.rounds) {
        for (const f of files) {
          const k = `${f.kind}:${f.path}`;
          assert(want[k], `${when}: ${k} not recorded by the daemon`);
          assertEquals(round.lookups?.[k], [{ url: want[k]!, server: "local" }], `${when}: ${k}`);
        }
        const count = round.counts?.find((c) => c.server === "local")?.count ?? 0;
        assert(count >= 9, `${when}: status count ${count}`);
        assertEquals(typeof round.queued, "number");
        assertEquals(typeof round.inPipeline, "number");
      }
    };
    const access = () => {
      const st = fs.statSync(db);
      const dir = fs.statSync(ws.data);
      assertEquals(st.mode & 0o777, 0o640);
      assertEquals(st.gid, 33);
      assertEquals(dir.mode & 0o777, 0o750);
      assertEquals(dir.gid, 33);
      assertEquals(fs.statSync(path.join(ws.data, "fileconveyor.db")).mode & 0o777, 0o600);
      assertEquals(fs.statSync(path.join(ws.data, "persistent_data.db")).mode & 0o777, 0o640);
    };

    let d = start(["sync", "--config", ws.config]);
    try {
      await d.waitFor("Initial scan done");
      await until(
        async () => {
          try {
            await check("first sync");
            return true;
          } catch {
            return false;
          }
        },
        30_000,
        "every lookup to answer",
      );
      access();
      // While the daemon writes: new files and changes, lookups keep answering.
      const before = fs.statSync(db).ino;
      const busy = (async () => {
        for (let i = 0; i < 80; i++) {
          write(path.join(filesReal, `burst/f ${i}.txt`), `x${i}`);
          write(path.join(root, "misc/drupal.js"), `var d = ${i};`);
          await new Promise((r) => setTimeout(r, 25));
        }
      })();
      await check("while the daemon writes", 60);
      await busy;
      assert(fs.statSync(db).ino !== before, "the web DB was not replaced while PHP read it");
      assertEquals(await d.stop(), 0);
      access();
      await check("after SIGTERM");

      d = start(["sync", "--config", ws.config]);
      await check("while restarting");
      await d.waitFor("Initial scan done");
      access();
      await check("after a restart");
      write(path.join(filesReal, "late file.png"), "late");
      const late = { kind: "public" as const, path: "late file.png" };
      await until(
        async () => {
          const r = await php({ ...request, files: [late] }, ws.root);
          return (r.rounds[0]?.lookups?.["public:late file.png"] ?? []).length === 1;
        },
        15_000,
        "a new file to be found",
      );
      await d.kill();
      access();
      await check("after kill -9");
      // A rebuild interrupted by the kill leaves a temporary file: the next start removes it.
      const leftover = path.join(ws.data, "synced_files.db.99999.tmp");
      fs.writeFileSync(leftover, "partial");

      d = start(["sync", "--config", ws.config]);
      await d.waitFor("Initial scan done");
      await check("after a restart following kill -9");
      assert(!fs.existsSync(leftover), "temporary file left behind");
      assertEquals(await d.stop(), 0);
      access();
    } finally {
      await d.kill();
    }
  } finally {
    ws.cleanup();
  }
});
