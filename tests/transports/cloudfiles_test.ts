import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import "../../src/transports/cloudfiles.ts";
import { ClassifiedError } from "../../src/errors.ts";
import { onLog } from "../../src/log.ts";
import { checkOptions } from "../../src/options.ts";
import {
  getTransportDef,
  isLister,
  isMover,
  isStater,
  type Transport,
  type TransportContext,
} from "../../src/transports/transport.ts";
import { assert, assertEquals, assertIncludes, assertRejects } from "../_assert.ts";
import { startServer, type SwiftInfo } from "../_servers.ts";
import { blackHoleServer } from "../_blackhole.ts";
import { conformance } from "./_conformance.ts";
import {
  md5Of,
  randomBytes,
  rcloneMd5s,
  rcloneSwift,
  swiftFetch,
  swiftHeaders,
  swiftList,
  swiftRead,
  swiftToken,
  tempFile,
  testContext,
  uniqueName,
} from "./_swift_helpers.ts";

const MiB = 1024 * 1024;
const signal = new AbortController().signal;

function v1(
  info: SwiftInfo,
  container: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    auth_version: "1",
    auth_url: info.authUrl,
    username: info.user,
    api_key: info.key,
    container,
    ...extra,
  };
}

async function make(
  raw: Record<string, string>,
  ctx: TransportContext = testContext("files"),
): Promise<Transport> {
  const def = getTransportDef("cloudfiles")!;
  const { values, problems } = checkOptions(def.options, raw);
  assertEquals(problems, []);
  assertEquals(def.validate!(values), []);
  return await def.create(values, ctx);
}

async function purge(info: SwiftInfo, container: string): Promise<void> {
  for (const c of [container, `${container}_segments`]) {
    await rcloneSwift(info, ["purge", `:swift:${c}`]).catch(() => {});
  }
}

const API_KEY = "rax-api-key-" + crypto.randomUUID();
const PASSWORD = "keystone-pw-" + crypto.randomUUID();

/**
 * A loopback identity service (Keystone v2 with Rackspace API keys, Keystone v3) whose
 * catalog points at a storage proxy in front of the real Swift: it accepts only the tokens it
 * issued (and not revoked ones) and forwards with a real tempauth token. It also plays the
 * Rackspace CDN management API.
 */
function fakeIdentity(info: SwiftInfo) {
  const issued = new Set<string>();
  const revoked = new Set<string>();
  const logins: unknown[] = [];
  const regionsUsed: string[] = [];
  const cdnEnabled = new Set<string>();
  let realToken: string | undefined;
  let base = "";
  let inflight = 0;
  let maxInflight = 0;
  const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
    new Response(JSON.stringify(body), {
      status,
      headers: { "Content-Type": "application/json", ...headers },
    });
  const issue = () => {
    const t = `fake-token-${logins.length}-${crypto.randomUUID().slice(0, 8)}`;
    issued.add(t);
    return t;
  };
  let ttlSeconds = 3600;
  /** Forces this page size on container listings (to exercise pagination). */
  let listLimit: number | undefined;
  const expires = () => new Date(Date.now() + ttlSeconds * 1000).toISOString();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    if (req.method === "POST" && url.pathname === "/v2.0/tokens") {
      const body = await req.json();
      logins.push(body);
      const auth = body.auth ?? {};
      const rax = auth["RAX-KSKEY:apiKeyCredentials"];
      const pw = auth.passwordCredentials;
      const ok = (rax && rax.username === "raxuser" && rax.apiKey === API_KEY) ||
        (pw && pw.username === "raxuser" && pw.password === PASSWORD);
      if (!ok) {
        return json(401, {
          unauthorized: { code: 401, message: "Username or api key is invalid." },
        });
      }
      return json(200, {
        access: {
          token: { id: issue(), expires: expires(), tenant: { id: "123456", name: "123456" } },
          user: { id: "1", name: "raxuser", "RAX-AUTH:defaultRegion": "ORD" },
          serviceCatalog: [
            {
              type: "object-store",
              name: "cloudFiles",
              endpoints: ["DFW", "ORD"].map((r) => ({
                region: r,
                tenantId: "MossoCloudFS_1",
                publicURL: `${base}/v1/${r}/AUTH_test`,
                internalURL: `${base}/v1/${r}-snet/AUTH_test`,
              })),
            },
            {
              type: "rax:object-cdn",
              name: "cloudFilesCDN",
              endpoints: ["DFW", "ORD"].map((r) => ({ region: r, publicURL: `${base}/cdn/${r}` })),
            },
            {
              type: "compute",
              name: "cloudServersOpenStack",
              endpoints: [{ region: "DFW", publicURL: "http://x" }],
            },
          ],
        },
      });
    }
    if (req.method === "POST" && url.pathname === "/v3/auth/tokens") {
      const body = await req.json();
      logins.push(body);
      const user = body.auth?.identity?.password?.user;
      const project = body.auth?.scope?.project;
      const ok = body.auth?.identity?.methods?.[0] === "password" && user?.name === "osuser" &&
        user?.domain?.name === "Users" && user?.password === PASSWORD && project?.name === "web" &&
        project?.domain?.name === "Projects";
      if (!ok) {
        return json(401, {
          error: { code: 401, message: "The request you have made requires authentication." },
        });
      }
      return json(201, {
        token: {
          expires_at: expires(),
          catalog: [{
            type: "object-store",
            name: "swift",
            endpoints: [
              {
                interface: "admin",
                region: "RegionOne",
                region_id: "RegionOne",
                url: "http://admin.invalid",
              },
              {
                interface: "internal",
                region: "RegionOne",
                region_id: "RegionOne",
                url: `${base}/v1/RegionOne-int/AUTH_test`,
              },
              {
                interface: "public",
                region: "RegionOne",
                region_id: "RegionOne",
                url: `${base}/v1/RegionOne/AUTH_test`,
              },
            ],
          }],
        },
      }, { "X-Subject-Token": issue() });
    }
    const token = req.headers.get("x-auth-token") ?? "";
    if (!issued.has(token) || revoked.has(token)) {
      await req.body?.cancel();
      return new Response("<html><h1>Unauthorized</h1></html>", { status: 401 });
    }
    const cdn = /^\/cdn\/([^/]+)\/([^/]+)$/.exec(url.pathname);
    if (cdn) {
      const container = decodeURIComponent(cdn[2]!);
      if (req.method === "PUT" && req.headers.get("x-cdn-enabled") === "True") {
        cdnEnabled.add(container);
        return new Response(null, { status: 201 });
      }
      if (req.method === "HEAD" && cdnEnabled.has(container)) {
        return new Response(null, {
          status: 204,
          headers: {
            "X-Cdn-Enabled": "True",
            "X-Cdn-Uri": `http://c0ffee.r12.cf1.rackcdn.com`,
            "X-Cdn-Ssl-Uri": `https://c0ffee-ssl.ssl.cf1.rackcdn.com`,
          },
        });
      }
      return new Response(null, { status: 404 });
    }
    const m = /^\/v1\/([^/]+)\/AUTH_test(\/.*)?$/.exec(url.pathname);
    if (!m) return new Response("no such route", { status: 400 });
    regionsUsed.push(m[1]!);
    inflight++;
    maxInflight = Math.max(maxInflight, inflight);
    try {
      return await forward(req, url, m[2] ?? "");
    } finally {
      inflight--;
    }
  });
  async function forward(req: Request, url: URL, rest: string): Promise<Response> {
    realToken ??= await swiftToken(info);
    const headers = new Headers(req.headers);
    headers.set("X-Auth-Token", realToken);
    headers.delete("host");
    if (listLimit && url.searchParams.has("limit")) {
      url.searchParams.set("limit", String(listLimit));
    }
    const up = await fetch(`${info.storageUrl}${rest}${url.search}`, {
      method: req.method,
      headers,
      body: req.body,
    });
    const body = req.method === "HEAD" ? null : new Uint8Array(await up.arrayBuffer());
    return new Response(body, { status: up.status, headers: up.headers });
  }
  base = `http://127.0.0.1:${server.addr.port}`;
  return {
    base,
    logins,
    regionsUsed,
    cdnEnabled,
    setTtl(seconds: number) {
      ttlSeconds = seconds;
    },
    setListLimit(n: number | undefined) {
      listLimit = n;
    },
    /** Most proxied storage calls in flight at once since the last call. */
    takeMaxInflight() {
      const m = maxInflight;
      maxInflight = 0;
      return m;
    },
    revokeAll() {
      for (const t of issued) revoked.add(t);
    },
    close: () => server.shutdown(),
  };
}

Deno.test("cloudfiles passes the conformance suite against Swift (tempauth, auth v1)", async (t) => {
  const info = await startServer("swift");
  const container = uniqueName("fc-cf");
  const token = await swiftToken(info);
  try {
    await conformance(t, {
      transporter: "cloudfiles",
      transport: () => make(v1(info, container)),
      readBack: (p) => swiftRead(info, token, container, p),
      readHeaders: (p) => swiftHeaders(info, token, container, p),
      urlPrefix: `${info.storageUrl}/${container}/`,
    });
    await t.step("rclone sees the same files with the same MD5s", async () => {
      const sums = await rcloneMd5s((a) => rcloneSwift(info, a), `:swift:${container}/par`);
      assertEquals(sums.size, 12);
      assertEquals(sums.get("f7.txt"), await md5Of(new TextEncoder().encode("file 7")));
      const odd = await rcloneSwift(info, ["cat", `:swift:${container}/odd/ünïcødé-日本.txt`]);
      assertEquals(new TextDecoder().decode(odd), "ünïcødé-日本.txt");
    });
  } finally {
    await purge(info, container);
  }
});

Deno.test("cloudfiles stores large files as Static Large Objects and cleans up their segments", async () => {
  const info = await startServer("swift");
  const container = uniqueName("fc-slo");
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "fc-cf-"));
  const token = await swiftToken(info);
  const t = await make(
    v1(info, container, { segment_threshold: "2M", segment_size: "1M", segment_concurrency: "3" }),
  );
  assert(isStater(t) && isMover(t) && isLister(t));
  // No segment may need a second try (a mismatch would be logged and retried).
  const warnings: string[] = [];
  const off = onLog((r) => {
    if (r.level !== "debug" && r.level !== "info") warnings.push(r.message);
  });
  try {
    const data = randomBytes(3 * MiB + 12345);
    const md5 = await md5Of(data);
    const local = await tempFile(dir, data);
    const r = await t.put(local, "video/clip.mp4", {
      signal,
      size: data.length,
      unprocessed: true,
    });
    assertEquals(r.size, data.length);
    assertEquals(r.md5, md5);
    const head = await swiftFetch(info, token, "HEAD", container, "video/clip.mp4");
    await head.body?.cancel();
    assertEquals(head.headers.get("x-static-large-object"), "True");
    assertEquals(head.headers.get("content-type"), "video/mp4");
    assertEquals(Number(head.headers.get("content-length")), data.length);
    assertEquals(await md5Of((await swiftRead(info, token, container, "video/clip.mp4"))!), md5);
    assertEquals(
      await md5Of(await rcloneSwift(info, ["cat", `:swift:${container}/video/clip.mp4`])),
      md5,
    );
    const segments = await swiftList(info, token, `${container}_segments`);
    assertEquals(segments.length, 4);
    assertEquals((await t.stat("video/clip.mp4", { signal }))?.md5, md5);
    // Overwriting replaces the segments: the old ones are deleted once the new manifest is in place.
    const data2 = randomBytes(2 * MiB + 1);
    const local2 = await tempFile(dir, data2);
    await t.put(local2, "video/clip.mp4", { signal, size: data2.length, unprocessed: true });
    const segments2 = await swiftList(info, token, `${container}_segments`);
    assertEquals(segments2.length, 3);
    assert(!segments2.some((s) => segments.includes(s)), "old segments left behind");
    assertEquals(
      await md5Of((await swiftRead(info, token, container, "video/clip.mp4"))!),
      await md5Of(data2),
    );
    // A move copies the manifest (not the data) and keeps the segments it uses.
    await t.move("video/clip.mp4", "video/renamed.mp4", { signal });
    assertEquals(await swiftRead(info, token, container, "video/clip.mp4"), null);
    assertEquals(
      await md5Of((await swiftRead(info, token, container, "video/renamed.mp4"))!),
      await md5Of(data2),
    );
    assertEquals((await swiftList(info, token, `${container}_segments`)).length, 3);
    const listed = [];
    for await (const e of t.list("video", { signal })) listed.push(e);
    assertEquals(listed.map((e) => [e.path, e.size, e.md5]), [[
      "video/renamed.mp4",
      data2.length,
      undefined,
    ]]);
    // Deleting a large object deletes its segments.
    await t.delete("video/renamed.mp4", { signal });
    assertEquals(await swiftList(info, token, `${container}_segments`), []);
    assertEquals(await swiftRead(info, token, container, "video/renamed.mp4"), null);
    assertEquals(warnings, []);
  } finally {
    off();
    await t.close();
    await purge(info, container);
    await fs.rm(dir, { recursive: true, force: true });
  }
});

Deno.test("cloudfiles sends the MD5 as ETag: the server refuses bytes that do not match (422, retry)", async () => {
  const info = await startServer("swift");
  const container = uniqueName("fc-etag");
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "fc-cf-"));
  const token = await swiftToken(info);
  const t = await make(v1(info, container));
  try {
    const data = randomBytes(2 * MiB);
    const local = await tempFile(dir, data);
    const r = await t.put(local, "ok.bin", {
      signal,
      size: data.length,
      unprocessed: true,
      md5: await md5Of(data),
    });
    assertEquals(r.etag, await md5Of(data));
    const err = await assertRejects(
      () =>
        t.put(local, "bad.bin", {
          signal,
          size: data.length,
          unprocessed: true,
          md5: "f".repeat(32),
        }),
      ClassifiedError,
    );
    assertEquals((err as ClassifiedError).kind, "retry");
    assertIncludes(err.message, "HTTP 422");
    assertEquals(await swiftRead(info, token, container, "bad.bin"), null);
    // The local file is shorter than announced: nothing is stored.
    const md5 = await md5Of(data);
    const err2 = await assertRejects(
      () => t.put(local, "short.bin", { signal, size: 3 * MiB, unprocessed: true, md5 }),
      ClassifiedError,
    );
    assertEquals((err2 as ClassifiedError).kind, "retry");
    assertEquals(await swiftRead(info, token, container, "short.bin"), null);
  } finally {
    await t.close();
    await purge(info, container);
    await fs.rm(dir, { recursive: true, force: true });
  }
});

Deno.test("cloudfiles sets Content-Type from the name and honours contentType, contentEncoding, cache_control", async () => {
  const info = await startServer("swift");
  const container = uniqueName("fc-hdr");
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "fc-cf-"));
  const token = await swiftToken(info);
  const t = await make(
    v1(info, container, { cache_control: "public, max-age=600", path: "static" }),
  );
  try {
    const f = await tempFile(dir, "x");
    await t.put(f, "js/app.js", { signal, size: 1, unprocessed: true });
    await t.put(f, "js/app.js.br", {
      signal,
      size: 1,
      unprocessed: false,
      contentType: "text/javascript",
      contentEncoding: "br",
    });
    const head = async (name: string) => {
      const res = await swiftFetch(info, token, "HEAD", container, name);
      await res.body?.cancel();
      assertEquals(res.status, 200, name);
      return res.headers;
    };
    const js = await head("static/js/app.js");
    assertEquals(js.get("content-type"), "text/javascript; charset=utf-8");
    assertEquals(js.get("cache-control"), "public, max-age=600");
    const br = await head("static/js/app.js.br");
    assertEquals(br.get("content-type"), "text/javascript");
    assertEquals(br.get("content-encoding"), "br");
    assertEquals(t.url("js/app.js"), `${info.storageUrl}/${container}/static/js/app.js`);
  } finally {
    await t.close();
    await purge(info, container);
    await fs.rm(dir, { recursive: true, force: true });
  }
});

Deno.test("cloudfiles: a wrong key is a server error that does not show the key", async () => {
  const info = await startServer("swift");
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "fc-cf-"));
  const key = "wrong-key-" + crypto.randomUUID();
  const t = await make(v1(info, uniqueName("fc-bad"), { api_key: key }), testContext("files"));
  try {
    const f = await tempFile(dir, "x");
    const err = await assertRejects(
      () => t.put(f, "a.css", { signal, size: 1, unprocessed: true }),
      ClassifiedError,
    );
    assertEquals((err as ClassifiedError).kind, "server");
    assertIncludes(err.message, 'Cannot log in to server "files"');
    assertIncludes(err.message, "credentials were refused (HTTP 401");
    assert(!err.message.includes(key), "key in message");
  } finally {
    await t.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});

Deno.test("cloudfiles auth v2 (Rackspace API key): region from the catalog, CDN URI, token renewed on 401", async () => {
  const info = await startServer("swift");
  const id = fakeIdentity(info);
  const container = uniqueName("fc-v2");
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "fc-cf-"));
  const token = await swiftToken(info);
  const base = { auth_url: `${id.base}/v2.0`, username: "raxuser", api_key: API_KEY, container };
  const t = await make({ ...base, cdn: "true" });
  const dfw = await make({ ...base, region: "dfw", endpoint_type: "internal" });
  try {
    const f = await tempFile(dir, "via v2");
    await t.put(f, "a.txt", { signal, size: 6, unprocessed: true });
    assertEquals(id.logins, [{
      auth: { "RAX-KSKEY:apiKeyCredentials": { username: "raxuser", apiKey: API_KEY } },
    }]);
    // No region set: the account's default region (ORD) from the login answer.
    assertEquals(id.regionsUsed.at(-1), "ORD");
    assertEquals(
      await swiftRead(info, token, container, "a.txt"),
      new TextEncoder().encode("via v2"),
    );
    // cdn: the container's CDN was enabled and its https URI is used.
    assert(id.cdnEnabled.has(container));
    assertEquals(t.url("img/a b.png"), "https://c0ffee-ssl.ssl.cf1.rackcdn.com/img/a%20b.png");
    // The token is revoked: the next calls get 401, log in again once, and succeed.
    id.revokeAll();
    await Promise.all(
      Array.from(
        { length: 6 },
        (_, i) => t.put(f, `after/${i}.txt`, { signal, size: 6, unprocessed: true }),
      ),
    );
    assertEquals(id.logins.length, 2);
    assertEquals((t as unknown as { logins: number }).logins, 2);
    // Revoked during a large object: every segment PUT is refused once (before its body is
    // read) and sent again with a new token; each attempt is hashed on its own.
    const slo = await make({
      ...base,
      segment_threshold: "8M",
      segment_size: "8M",
      segment_concurrency: "3",
    });
    const bigData = randomBytes(17 * MiB);
    const big = await tempFile(dir, bigData);
    await slo.put(f, "warm-slo.txt", { signal, size: 6, unprocessed: true });
    id.revokeAll();
    const warnings: string[] = [];
    const off = onLog((r) => {
      if (r.level === "warn") warnings.push(r.message);
    });
    try {
      const r = await slo.put(big, "after/big.bin", {
        signal,
        size: bigData.length,
        unprocessed: true,
      });
      assertEquals(r.md5, await md5Of(bigData));
      assertEquals((slo as unknown as { logins: number }).logins, 2);
    } finally {
      off();
      await slo.close();
    }
    assertEquals(warnings, []);
    assertEquals(
      await md5Of((await swiftRead(info, token, container, "after/big.bin"))!),
      await md5Of(bigData),
    );
    assertEquals(
      await swiftRead(info, token, container, "after/5.txt"),
      new TextEncoder().encode("via v2"),
    );
    // At most maxConnections calls at once.
    const two = await make({ ...base }, testContext("files", { maxConnections: 2 }));
    await two.put(f, "two/warm.txt", { signal, size: 6, unprocessed: true });
    id.takeMaxInflight();
    await Promise.all(
      Array.from(
        { length: 12 },
        (_, i) => two.put(f, `two/${i}.txt`, { signal, size: 6, unprocessed: true }),
      ),
    );
    await two.close();
    const most = id.takeMaxInflight();
    assert(most === 2, `${most} calls at once, limit 2`);
    // An explicit region (any case) and the internal (ServiceNet) URL.
    await dfw.put(f, "b.txt", { signal, size: 6, unprocessed: true });
    assertEquals(id.regionsUsed.at(-1), "DFW-snet");
  } finally {
    await t.close();
    await dfw.close();
    await id.close();
    await purge(info, container);
    await fs.rm(dir, { recursive: true, force: true });
  }
});

Deno.test("cloudfiles auth v2 password login, unknown region and refused key are clear server errors", async () => {
  const info = await startServer("swift");
  const id = fakeIdentity(info);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "fc-cf-"));
  const container = uniqueName("fc-v2p");
  const base = { auth_url: `${id.base}/v2.0/tokens`, username: "raxuser", container };
  const pw = await make({ ...base, password: PASSWORD, tenant_name: "123456" });
  const nowhere = await make({ ...base, api_key: API_KEY, region: "SYD" });
  const refused = await make({ ...base, api_key: "nope-" + API_KEY });
  try {
    const f = await tempFile(dir, "pw");
    // Tokens that expire in 61 s: renewed before they expire (a minute ahead), without a 401.
    id.setTtl(61);
    await pw.put(f, "p.txt", { signal, size: 2, unprocessed: true });
    assertEquals(id.logins[0], {
      auth: {
        passwordCredentials: { username: "raxuser", password: PASSWORD },
        tenantName: "123456",
      },
    });
    await pw.put(f, "p2.txt", { signal, size: 2, unprocessed: true });
    assertEquals(id.logins.length, 1);
    await new Promise((r) => setTimeout(r, 1100));
    await pw.put(f, "p3.txt", { signal, size: 2, unprocessed: true });
    assertEquals(id.logins.length, 2);
    id.setTtl(3600);
    // Listings are followed page by page (the proxy forces two names a page).
    for (let i = 0; i < 5; i++) {
      await pw.put(f, `pages/${i}.txt`, { signal, size: 2, unprocessed: true });
    }
    id.setListLimit(2);
    assert(isLister(pw));
    const names: string[] = [];
    for await (const e of pw.list("pages", { signal })) names.push(e.path);
    id.setListLimit(undefined);
    assertEquals(names, [0, 1, 2, 3, 4].map((i) => `pages/${i}.txt`));
    const e1 = await assertRejects(
      () => nowhere.put(f, "p.txt", { signal, size: 2, unprocessed: true }),
      ClassifiedError,
    );
    assertEquals((e1 as ClassifiedError).kind, "server");
    assertIncludes(
      e1.message,
      'no public "object-store" endpoint in region "SYD" (regions: "DFW", "ORD")',
    );
    const e2 = await assertRejects(
      () => refused.put(f, "p.txt", { signal, size: 2, unprocessed: true }),
      ClassifiedError,
    );
    assertEquals((e2 as ClassifiedError).kind, "server");
    assertIncludes(e2.message, "Username or api key is invalid");
    assert(!e2.message.includes(API_KEY), "key in message");
  } finally {
    await pw.close();
    await nowhere.close();
    await refused.close();
    await id.close();
    await purge(info, container);
    await fs.rm(dir, { recursive: true, force: true });
  }
});

Deno.test("cloudfiles auth v3 (Keystone password, domains, project scope, catalog interface)", async () => {
  const info = await startServer("swift");
  const id = fakeIdentity(info);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "fc-cf-"));
  const container = uniqueName("fc-v3");
  const token = await swiftToken(info);
  const t = await make({
    auth_version: "3",
    auth_url: `${id.base}/v3`,
    username: "osuser",
    password: PASSWORD,
    user_domain: "Users",
    tenant_name: "web",
    project_domain: "Projects",
    container,
  });
  try {
    const f = await tempFile(dir, "via v3");
    await t.put(f, "c.txt", { signal, size: 6, unprocessed: true });
    assertEquals(id.logins, [{
      auth: {
        identity: {
          methods: ["password"],
          password: { user: { name: "osuser", domain: { name: "Users" }, password: PASSWORD } },
        },
        scope: { project: { name: "web", domain: { name: "Projects" } } },
      },
    }]);
    assertEquals([...new Set(id.regionsUsed)], ["RegionOne"]);
    assertEquals(
      await swiftRead(info, token, container, "c.txt"),
      new TextEncoder().encode("via v3"),
    );
    assertEquals(t.url("c.txt"), `${id.base}/v1/RegionOne/AUTH_test/${container}/c.txt`);
  } finally {
    await t.close();
    await id.close();
    await purge(info, container);
    await fs.rm(dir, { recursive: true, force: true });
  }
});

Deno.test("cloudfiles gives up on an identity service that never answers", async () => {
  const hole = blackHoleServer();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "fc-cf-"));
  const t = await make(
    { auth_url: `http://127.0.0.1:${hole.port}/v2.0`, username: "u", api_key: "k", container: "c" },
    testContext("files", { timeoutMs: 500 }),
  );
  try {
    const f = await tempFile(dir, "x");
    const t0 = performance.now();
    const err = await assertRejects(
      () => t.put(f, "a", { signal, size: 1, unprocessed: true }),
      ClassifiedError,
    );
    assertEquals((err as ClassifiedError).kind, "server");
    assertIncludes(err.message, "no answer within 0.5 s");
    assert(performance.now() - t0 < 3000);
  } finally {
    await t.close();
    hole.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});

Deno.test("cloudfiles settings are validated without connecting", () => {
  const def = getTransportDef("cloudfiles")!;
  const check = (raw: Record<string, string>) => {
    const { values, problems } = checkOptions(def.options, raw);
    return [...problems.map((p) => p.message), ...def.validate!(values)].join("\n");
  };
  assertEquals(check({ username: "u", api_key: "k", container: "c" }), "");
  assertIncludes(check({ username: "u", container: "c" }), 'Set "api_key" or "password"');
  assertIncludes(
    check({ username: "u", password: "p", container: "c", auth_version: "3" }),
    'Auth version 3 needs "auth_url"',
  );
  assertIncludes(
    check({ username: "u", api_key: "k", container: "c", auth_version: "4" }),
    'Setting "auth_version" must be one of',
  );
  assertIncludes(
    check({ username: "u", api_key: "k", container: "c", segment_size: "big" }),
    'Setting "segment_size" must be a size',
  );
  assertIncludes(check({ username: "u", api_key: "k", container: "a/b" }), 'must not contain "/"');
  assertIncludes(check({ api_key: "k", container: "c" }), 'Missing required setting "username"');
  assertEquals(def.options.filter((o) => o.secret).map((o) => o.name).sort(), [
    "api_key",
    "password",
  ]);
  assertEquals(getTransportDef("mosso"), def);
});

Deno.test("cloudfiles create() parses raw settings once and refuses bad ones naming the server", async () => {
  const def = getTransportDef("cloudfiles")!;
  const base = {
    username: "acct:user",
    api_key: "k",
    container: "c",
    auth_version: "1",
    auth_url: "http://127.0.0.1:9/auth/v1.0",
  };
  for (
    const [raw, expected] of [
      [{ ...base, segment_concurrency: "two" }, 'Setting "segment_concurrency" must be'],
      [{ ...base, cdn: "perhaps" }, 'Setting "cdn" must be true or false'],
      [{ ...base, segment_size: "big" }, 'Setting "segment_size" must be a size'],
      [{ ...base, auth_version: "4" }, 'Setting "auth_version" must be one of'],
    ] as const
  ) {
    const err = await assertRejects(() => def.create(raw, testContext("files")), ClassifiedError);
    assertEquals((err as ClassifiedError).kind, "fatal");
    assertIncludes(err.message, 'server "files"');
    assertIncludes(err.message, expected);
  }
  // Raw values without defaults: the URL comes from url + path, with no login.
  const t = await def.create(
    { ...base, url: "http://cdn.test/", path: "static" },
    testContext("files"),
  );
  try {
    assertEquals(t.url("a b.css"), "http://cdn.test/static/a%20b.css");
  } finally {
    await t.close();
  }
});
