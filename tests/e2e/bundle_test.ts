/**
 * End-to-end tests of the single-file bundle (`dist/fileconveyor.js`, what
 * `deno task compile` turns into executables): it is copied ALONE into an
 * empty folder and run from there with an empty `DENO_DIR`, no config, no
 * npm, no remote modules, no downloads (`--cached-only`), the daemon's own
 * permission set, and read access to the repository's `src/`,
 * `node_modules/` and `dist/` and the developer's Deno cache denied. So a
 * pass proves every npm package and both WebAssembly engines are inside the
 * file, and that it runs with exactly the permissions compiled binaries get.
 *
 * The bundle is built first when it is missing or older than its sources.
 *
 * @module
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { DatabaseSync } from "node:sqlite";
import * as zlib from "node:zlib";
import {
  BUNDLE_PATH,
  denoCacheDir,
  ensureBundle,
  isolatedRunFlags,
  PERMISSIONS,
  ROOT,
} from "../../scripts/build/bundle.ts";
import { VERSION } from "../../src/version.ts";
import { localConfig, type RunResult, type Workspace, workspace, write } from "../_harness.ts";
import { startServer } from "../_servers.ts";
import { assert, assertEquals, assertIncludes } from "../_assert.ts";

let built: Promise<string> | undefined;

/** Builds the bundle once per test run (when stale). */
function bundle(): Promise<string> {
  built ??= ensureBundle({ log: () => {} });
  return built;
}

/** A folder holding nothing but a copy of the bundle, and an empty Deno cache. */
interface Sandbox {
  dir: string;
  denoDir: string;
  run(args: string[]): Promise<RunResult>;
  cleanup(): void;
}

async function sandbox(): Promise<Sandbox> {
  const source = await bundle();
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "fc-bundle-")));
  const app = path.join(dir, "app");
  const denoDir = path.join(dir, "deno-dir");
  fs.mkdirSync(app);
  fs.mkdirSync(denoDir);
  fs.copyFileSync(source, path.join(app, "fileconveyor.js"));
  const denied = [
    path.join(ROOT, "node_modules"),
    path.join(ROOT, "src"),
    path.join(ROOT, "dist"),
    await globalDenoDir(),
  ].filter((p) => !dir.startsWith(p + path.sep));
  return {
    dir,
    denoDir,
    async run(args) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          ...isolatedRunFlags(),
          ...PERMISSIONS,
          `--deny-read=${denied.join(",")}`,
          "fileconveyor.js",
          ...args,
        ],
        cwd: app,
        env: { DENO_DIR: denoDir, NO_COLOR: "1", FILECONVEYOR_LOG: "info" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const dec = new TextDecoder();
      return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
    },
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

let denoDirPromise: Promise<string> | undefined;

/** The Deno cache this test process uses (it holds every npm package). */
function globalDenoDir(): Promise<string> {
  denoDirPromise ??= denoCacheDir();
  return denoDirPromise;
}

/** Asserts the run downloaded nothing into its Deno cache. */
function assertNothingFetched(sb: Sandbox): void {
  for (const sub of ["npm", "remote", "registries"]) {
    const p = path.join(sb.denoDir, sub);
    const entries = fs.existsSync(p) ? fs.readdirSync(p) : [];
    assertEquals(entries, [], `DENO_DIR/${sub} must stay empty`);
  }
}

const CSS = `/* Site styles: this comment must go. */
body {
  color: #ff0000;
  margin: 0px 0px 0px 0px;
}

.header   .title {
  font-weight: bold;
}
`;

const JS = `// Greets: this comment must go.
function greet(personName) {
  const greeting = "Hello, " + personName;
  return greeting;
}
console.log(greet("world"));
`;

/** A 64×64 RGB gradient PNG with stored (uncompressed) deflate blocks: oxipng shrinks it a lot. */
function fatPng(): Uint8Array {
  const w = 64, h = 64;
  const raw = new Uint8Array(h * (1 + w * 3));
  for (let y = 0; y < h; y++) {
    raw[y * (1 + w * 3)] = 0; // filter: none
    for (let x = 0; x < w; x++) {
      const o = y * (1 + w * 3) + 1 + x * 3;
      raw[o] = x * 4;
      raw[o + 1] = y * 4;
      raw[o + 2] = 128;
    }
  }
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, w);
  v.setUint32(4, h);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, deflate, adaptive filters, no interlace
  return concat([
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", new Uint8Array(zlib.deflateSync(raw, { level: 0 }))),
    chunk("IEND", new Uint8Array()),
  ]);
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  v.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Width and height from a PNG's IHDR; throws when the signature is wrong. */
function pngSize(bytes: Uint8Array): [number, number] {
  assertEquals([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return [v.getUint32(16), v.getUint32(20)];
}

/** The rule body every sync test uses: both WASM engines. */
const WASM_CHAIN = `<processorChain>
        <processor name="yui_compressor.YUICompressor" />
        <processor name="image_optimizer.KeepFilename" />
      </processorChain>`;

/** Writes the test tree: CSS, JS, a fat PNG and a file no processor touches. */
function populate(ws: Workspace): Uint8Array {
  const png = fatPng();
  write(path.join(ws.src, "css", "site.css"), CSS);
  write(path.join(ws.src, "js", "app.js"), JS);
  write(path.join(ws.src, "img", "gradient.png"), png);
  write(path.join(ws.src, "docs", "read me.txt"), "plain text, synced as is\n");
  return png;
}

/** Checks what a destination received from {@linkcode populate}'s tree. */
function checkDestination(read: (p: string) => Uint8Array | null, png: Uint8Array): void {
  const text = (p: string) => {
    const b = read(p);
    assert(b !== null, `${p} missing at the destination`);
    return new TextDecoder().decode(b);
  };
  const css = text("css/site.css");
  assert(css.length < CSS.length, `CSS not minified: ${JSON.stringify(css)}`);
  assert(!css.includes("comment must go"), `CSS comment kept: ${JSON.stringify(css)}`);
  assertIncludes(css, ".header .title");
  const js = text("js/app.js");
  assert(js.length < JS.length, `JS not minified: ${JSON.stringify(js)}`);
  assert(!js.includes("comment must go"), `JS comment kept: ${JSON.stringify(js)}`);
  assertIncludes(js, '"world"');
  const img = read("img/gradient.png");
  assert(img !== null, "img/gradient.png missing at the destination");
  assertEquals(pngSize(img), [64, 64]);
  assert(img.length < png.length / 2, `PNG not optimised: ${png.length} → ${img.length} bytes`);
  assertEquals(text("docs/read me.txt"), "plain text, synced as is\n");
}

Deno.test("bundle: is one file, newer than its sources", async () => {
  const file = await bundle();
  assertEquals(file, BUNDLE_PATH);
  const size = fs.statSync(file).size;
  // Both engines are inside (esbuild alone is ~3.9 MB as brotli + base64),
  // yet it stays far below the raw 14 MB esbuild.wasm.
  assert(size > 3_500_000 && size < 12_000_000, `unexpected bundle size ${size}`);
});

Deno.test("bundle: --version and validate run from an empty folder without the repo", async () => {
  const sb = await sandbox();
  const ws = workspace("fc-bundle-ws-");
  try {
    let r = await sb.run(["--version"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout.trim(), VERSION);

    populate(ws);
    localConfig(ws, { ruleBody: WASM_CHAIN });
    r = await sb.run(["validate", "--config", ws.config]);
    assertEquals(r.code, 0, r.stderr);
    assertIncludes(r.stdout, "is valid");
    assertIncludes(r.stdout, "yui_compressor.YUICompressor → image_optimizer.KeepFilename");

    // Configuration errors keep their exit code in the bundle.
    fs.writeFileSync(ws.config, "<config><sources>");
    r = await sb.run(["validate", "--config", ws.config]);
    assertEquals(r.code, 2, r.stderr);
    assertNothingFetched(sb);
  } finally {
    ws.cleanup();
    sb.cleanup();
  }
});

Deno.test("bundle: sync --once to a local folder runs the WASM minifier and PNG optimiser", async () => {
  const sb = await sandbox();
  const ws = workspace("fc-bundle-ws-");
  try {
    const png = populate(ws);
    localConfig(ws, { ruleBody: WASM_CHAIN });
    const r = await sb.run(["sync", "--config", ws.config, "--once"]);
    assertEquals(r.code, 0, r.stderr);
    assertIncludes(r.stderr, "Done: 4 synced");
    // The web application's database is written with the bundle's own permissions (not -A,
    // under which Deno refuses SQLite's ATTACH).
    assert(!r.stderr.includes("Cannot write the web application databases"), r.stderr);
    const web = new DatabaseSync(path.join(ws.data, "synced_files.db"), { readOnly: true });
    try {
      const n = web.prepare("SELECT COUNT(DISTINCT real_file) AS n FROM synced_files").get() as {
        n: number;
      };
      assertEquals(n.n, 4);
    } finally {
      web.close();
    }
    checkDestination((p) => {
      try {
        return fs.readFileSync(path.join(ws.dst, p));
      } catch {
        return null;
      }
    }, png);
    assertNothingFetched(sb);
  } finally {
    ws.cleanup();
    sb.cleanup();
  }
});

Deno.test("bundle: sync --once to SFTP runs the WASM minifier and PNG optimiser", async () => {
  const sftp = await startServer("sftp");
  const sb = await sandbox();
  const ws = workspace("fc-bundle-ws-");
  const remote = `bundle-test-${crypto.randomUUID().slice(0, 8)}`;
  try {
    const png = populate(ws);
    fs.writeFileSync(
      ws.config,
      `<?xml version="1.0" encoding="UTF-8"?>
<config>
  <sources>
    <source name="site" scanPath="${ws.src}" />
  </sources>
  <servers>
    <server name="sftp" transporter="sftp">
      <host>${sftp.host}</host>
      <port>${sftp.port}</port>
      <username>${sftp.username}</username>
      <key>${sftp.keyPath}</key>
      <known_hosts>${sftp.knownHostsPath}</known_hosts>
      <path>${remote}</path>
      <url>http://cdn.test/</url>
    </server>
  </servers>
  <rules>
    <rule for="site" label="all">
      ${WASM_CHAIN}
      <destinations><destination server="sftp" /></destinations>
    </rule>
  </rules>
  <settings>
    <dataDir>${ws.data}</dataDir>
    <settleDelay>20</settleDelay>
  </settings>
</config>
`,
    );
    const r = await sb.run(["sync", "--config", ws.config, "--once"]);
    assertEquals(r.code, 0, r.stderr);
    assertIncludes(r.stderr, "Done: 4 synced");
    // The server runs on this machine: read what it stored straight from its disk.
    checkDestination((p) => {
      try {
        return fs.readFileSync(path.join(sftp.root, remote, p));
      } catch {
        return null;
      }
    }, png);
    assertNothingFetched(sb);
  } finally {
    fs.rmSync(path.join(sftp.root, remote), { recursive: true, force: true });
    ws.cleanup();
    sb.cleanup();
  }
});

Deno.test("bundle: sync --once to FTPS that requires TLS session reuse (vsftpd, via OpenSSL)", async () => {
  const vs = await startServer("vsftpd");
  const sb = await sandbox();
  const ws = workspace("fc-bundle-ws-");
  const remote = `bundle-test-${crypto.randomUUID().slice(0, 8)}`;
  try {
    const png = populate(ws);
    fs.writeFileSync(
      ws.config,
      `<?xml version="1.0" encoding="UTF-8"?>
<config>
  <sources>
    <source name="site" scanPath="${ws.src}" />
  </sources>
  <servers>
    <server name="ftps" transporter="ftp">
      <host>${vs.host}</host>
      <port>${vs.port}</port>
      <username>${vs.username}</username>
      <password>${vs.password}</password>
      <tls>explicit</tls>
      <ca>${vs.caPath}</ca>
      <path>${remote}</path>
      <url>http://cdn.test/</url>
    </server>
  </servers>
  <rules>
    <rule for="site" label="all">
      ${WASM_CHAIN}
      <destinations><destination server="ftps" /></destinations>
    </rule>
  </rules>
  <settings>
    <dataDir>${ws.data}</dataDir>
    <settleDelay>20</settleDelay>
  </settings>
</config>
`,
    );
    const r = await sb.run(["sync", "--config", ws.config, "--once"]);
    assertEquals(r.code, 0, r.stderr);
    assertIncludes(r.stderr, "Done: 4 synced");
    assertIncludes(r.stderr, "its connections now use the system's OpenSSL");
    checkDestination((p) => {
      try {
        return fs.readFileSync(path.join(vs.root, remote, p));
      } catch {
        return null;
      }
    }, png);
    assertNothingFetched(sb);
  } finally {
    fs.rmSync(path.join(vs.root, remote), { recursive: true, force: true });
    ws.cleanup();
    sb.cleanup();
  }
});
