import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import "../../src/transports/s3.ts";
import { ClassifiedError } from "../../src/errors.ts";
import { checkOptions, type OptionValues } from "../../src/options.ts";
import {
  getTransportDef,
  isStater,
  type Transport,
  type TransportContext,
} from "../../src/transports/transport.ts";
import { assert, assertEquals, assertIncludes, assertRejects } from "../_assert.ts";
import { startServer, type SwiftInfo } from "../_servers.ts";
import { TcpProxy } from "../_proxy.ts";
import { blackHoleServer } from "../_blackhole.ts";
import { conformance } from "./_conformance.ts";
import {
  md5Of,
  randomBytes,
  rcloneMd5s,
  rcloneS3,
  s3Purge,
  swiftFetch,
  swiftHeaders,
  swiftRead,
  swiftToken,
  tempFile,
  testContext,
  uniqueName,
} from "./_swift_helpers.ts";

const MiB = 1024 * 1024;
const signal = new AbortController().signal;

function settings(
  info: SwiftInfo,
  bucket: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    access_key_id: info.accessKeyId,
    secret_access_key: info.secretAccessKey,
    bucket_name: bucket,
    endpoint: info.s3Endpoint,
    region: info.region,
    force_path_style: "true",
    checksum: "when_required",
    create_bucket: "true",
    ...extra,
  };
}

/** Validates settings like the config loader (defaults applied, cross checks) and creates the transport. */
async function make(
  raw: Record<string, string>,
  ctx: TransportContext = testContext("s3"),
): Promise<Transport> {
  const def = getTransportDef("s3")!;
  const { values, problems } = checkOptions(def.options, raw);
  assertEquals(problems, []);
  assertEquals(def.validate!(values), []);
  return await def.create(values, ctx);
}

function problemsOf(raw: Record<string, string>): string[] {
  const def = getTransportDef("s3")!;
  const { values, problems } = checkOptions(def.options, raw);
  return [...problems.map((p) => p.message), ...def.validate!(values as OptionValues)];
}

Deno.test("s3 passes the transport conformance suite against Swift's S3 API", async (t) => {
  const info = await startServer("swift");
  const bucket = uniqueName("fc-s3");
  const token = await swiftToken(info);
  try {
    await conformance(t, {
      transporter: "s3",
      transport: () => make(settings(info, bucket, { multipart_threshold: "5M", part_size: "5M" })),
      // The bucket is a Swift container: read through the Swift API, not through S3 or our code.
      readBack: (p) => swiftRead(info, token, bucket, p),
      readHeaders: (p) => swiftHeaders(info, token, bucket, p),
      urlPrefix: `${info.s3Endpoint}/${bucket}/`,
    });
    await t.step("rclone sees the same files and MD5s", async () => {
      const sums = await rcloneMd5s((a) => rcloneS3(info, a), `:s3:${bucket}/par`);
      assertEquals(sums.size, 12);
      assertEquals(sums.get("f3.txt"), await md5Of(new TextEncoder().encode("file 3")));
    });
  } finally {
    await s3Purge(info, bucket);
  }
});

Deno.test("s3 multipart upload verifies every part and stores the MD5 where rclone finds it", async () => {
  const info = await startServer("swift");
  const bucket = uniqueName("fc-s3mp");
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "fc-s3-"));
  const t = await make(
    settings(info, bucket, { multipart_threshold: "5M", part_size: "5M", part_concurrency: "2" }),
  );
  try {
    const data = randomBytes(11 * MiB + 77);
    const md5 = await md5Of(data);
    const local = await tempFile(dir, data);
    const r = await t.put(local, "media/big.bin", { signal, size: data.length, unprocessed: true });
    assertEquals(r.size, data.length);
    assertEquals(r.md5, md5);
    assert(r.etag?.endsWith("-3"), `multipart ETag ${r.etag}`);
    assert(isStater(t));
    const st = await t.stat("media/big.bin", { signal });
    assertEquals(st?.size, data.length);
    assertEquals(st?.md5, md5);
    // rclone reads its own md5chksum metadata: an independent check of the stored MD5 and bytes.
    const sums = await rcloneMd5s((a) => rcloneS3(info, a), `:s3:${bucket}/media`);
    assertEquals(sums.get("big.bin"), md5);
    const back = await rcloneS3(info, ["cat", `:s3:${bucket}/media/big.bin`]);
    assertEquals(await md5Of(back), md5);
    // Cancelled halfway: the upload is aborted on the server, no parts are left behind.
    const ctl = new AbortController();
    const big = await tempFile(dir, randomBytes(41 * MiB));
    const slow = await make(
      settings(info, bucket, { multipart_threshold: "5M", part_size: "5M", part_concurrency: "1" }),
    );
    const uploads = async () =>
      JSON.parse(
        new TextDecoder().decode(
          await rcloneS3(info, ["backend", "list-multipart-uploads", `:s3:${bucket}`]),
        ),
      )[bucket] as unknown[];
    const put = slow.put(big, "media/cancelled.bin", {
      signal: ctl.signal,
      size: 41 * MiB,
      unprocessed: true,
    });
    let settled = false;
    put.then(() => settled = true, () => settled = true);
    // Cancel once the upload is visible on the server.
    while ((await uploads()).length === 0) {
      assert(!settled, "the upload ended before it could be cancelled");
      await new Promise((r) => setTimeout(r, 20));
    }
    ctl.abort();
    const err = await assertRejects(() => put, ClassifiedError);
    await slow.close();
    assertEquals((err as ClassifiedError).kind, "retry");
    assertEquals(await uploads(), []);
  } finally {
    await t.close();
    await s3Purge(info, bucket);
    await fs.rm(dir, { recursive: true, force: true });
  }
});

Deno.test("s3 sets Content-Type from the name and honours contentType, contentEncoding and headers", async () => {
  const info = await startServer("swift");
  const bucket = uniqueName("fc-s3hdr");
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "fc-s3-"));
  const token = await swiftToken(info);
  const t = await make(settings(info, bucket, { headers: "original" }));
  const t2 = await make(settings(info, bucket, { cache_control: "public, max-age=60" }));
  try {
    const css = await tempFile(dir, "a{color:red}");
    await t.put(css, "css/a.css", { signal, size: 12, unprocessed: true });
    await t.put(css, "img/logo.svg", { signal, size: 12, unprocessed: true });
    await t.put(css, "data/blob", { signal, size: 12, unprocessed: true });
    // A precompressed variant keeps the original's type and says how it is encoded.
    await t.put(css, "css/a.css.gz", {
      signal,
      size: 12,
      unprocessed: false,
      contentType: "text/css",
      contentEncoding: "gzip",
    });
    await t2.put(css, "css/b.css", { signal, size: 12, unprocessed: true });
    // An encoding without a type: the type of the name without its .br suffix.
    await t.put(css, "js/app.js.br", {
      signal,
      size: 12,
      unprocessed: false,
      contentEncoding: "br",
    });
    const head = async (name: string) => {
      const res = await swiftFetch(info, token, "HEAD", bucket, name);
      await res.body?.cancel();
      assertEquals(res.status, 200, name);
      return res.headers;
    };
    assertEquals((await head("css/a.css")).get("content-type"), "text/css; charset=utf-8");
    assertEquals((await head("img/logo.svg")).get("content-type"), "image/svg+xml");
    assertEquals((await head("data/blob")).get("content-type"), "application/octet-stream");
    const gz = await head("css/a.css.gz");
    assertEquals(gz.get("content-type"), "text/css");
    assertEquals(gz.get("content-encoding"), "gzip");
    const br = await head("js/app.js.br");
    assertEquals(br.get("content-type"), "text/javascript; charset=utf-8");
    assertEquals(br.get("content-encoding"), "br");
    const a = await head("css/a.css");
    assertEquals(a.get("cache-control"), "max-age=315360000");
    assertEquals(a.get("expires"), "Tue, 20 Jan 2037 03:00:00 GMT");
    const b = await head("css/b.css");
    assertEquals(b.get("cache-control"), "public, max-age=60");
    assertEquals(b.get("expires"), null);
  } finally {
    await t.close();
    await t2.close();
    await s3Purge(info, bucket);
    await fs.rm(dir, { recursive: true, force: true });
  }
});

Deno.test("s3 refuses a wrong secret as a server error that names server and path but not the secret", async () => {
  const info = await startServer("swift");
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "fc-s3-"));
  const secret = "wrong-" + crypto.randomUUID();
  const t = await make(
    settings(info, uniqueName("fc-s3bad"), { secret_access_key: secret }),
    testContext("cdn"),
  );
  const t2 = await make(
    settings(info, uniqueName("fc-s3bad"), { access_key_id: "nobody:none" }),
    testContext("cdn"),
  );
  try {
    const local = await tempFile(dir, "x");
    const err = await assertRejects(
      () => t.put(local, "css/a.css", { signal, size: 1, unprocessed: true }),
      ClassifiedError,
    );
    assertEquals((err as ClassifiedError).kind, "server");
    assertIncludes(err.message, 'Cannot upload "css/a.css" to server "cdn"');
    assertIncludes(err.message, "SignatureDoesNotMatch");
    assert(!err.message.includes(secret), "secret in message");
    assert(!String((err as Error).stack).includes(secret), "secret in stack");
    const err2 = await assertRejects(
      () => t2.put(local, "a.css", { signal, size: 1, unprocessed: true }),
      ClassifiedError,
    );
    assertEquals((err2 as ClassifiedError).kind, "server");
    // Swift's tempauth cannot tell an unknown key from a wrong secret; AWS says InvalidAccessKeyId.
    assert(/InvalidAccessKeyId|SignatureDoesNotMatch/.test(err2.message), err2.message);
    // A streamed body: the server refuses before reading it and cuts the connection; the reason is still reported.
    const big = await tempFile(dir, randomBytes(3 * MiB));
    const err4 = await assertRejects(
      () => t.put(big, "big.bin", { signal, size: 3 * MiB, unprocessed: true }),
      ClassifiedError,
    );
    assertEquals((err4 as ClassifiedError).kind, "server");
    assertIncludes(err4.message, "SignatureDoesNotMatch");
    assert(isStater(t));
    const err3 = await assertRejects(() => t.stat("a.css", { signal }), ClassifiedError);
    assertEquals((err3 as ClassifiedError).kind, "server");
    assertIncludes(err3.message, "access denied");
  } finally {
    await t.close();
    await t2.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});

Deno.test("s3 reports a missing bucket as a server error unless create_bucket is on", async () => {
  const info = await startServer("swift");
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "fc-s3-"));
  const bucket = uniqueName("fc-s3none");
  const t = await make(settings(info, bucket, { create_bucket: "false" }), testContext("cdn"));
  try {
    const local = await tempFile(dir, "x");
    const err = await assertRejects(
      () => t.put(local, "a.txt", { signal, size: 1, unprocessed: true }),
      ClassifiedError,
    );
    assertEquals((err as ClassifiedError).kind, "server");
    assertIncludes(err.message, `bucket "${bucket}" does not exist`);
    await t.delete("a.txt", { signal }).then(
      () => assert(false, "delete in a missing bucket succeeded"),
      (e) => {
        assertEquals((e as ClassifiedError).kind, "server");
      },
    );
  } finally {
    await t.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});

/**
 * A proxy to Swift that answers the first PutObject itself, after reading its body, with the
 * start of a 404 NoSuchBucket reply and then hangs up: what a client sees when the server
 * refuses a streamed upload at once and the connection is cut before the reply's body
 * arrives. Everything else is passed through.
 */
function cutFirstPut(targetPort: number): { port: number; cut(): number; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  let cut = 0;
  const dec = new TextDecoder();
  const serve = async (c: Deno.Conn) => {
    let head = new Uint8Array(0);
    const buf = new Uint8Array(65536);
    let end = -1;
    while (end < 0) {
      const n = await c.read(buf);
      if (n === null) return;
      const joined = new Uint8Array(head.length + n);
      joined.set(head);
      joined.set(buf.subarray(0, n), head.length);
      head = joined;
      end = dec.decode(head).indexOf("\r\n\r\n");
    }
    const text = dec.decode(head.subarray(0, end));
    if (cut === 0 && /^PUT \/[^/ ]+\/[^ ]+x-id=PutObject /.test(text)) {
      cut++;
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(text)?.[1] ?? "0");
      let body = head.length - (end + 4);
      while (body < length) {
        const n = await c.read(buf);
        if (n === null) break;
        body += n;
      }
      const xml = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchBucket</Code>';
      await c.write(
        new TextEncoder().encode(
          "HTTP/1.1 404 Not Found\r\nContent-Type: application/xml\r\n" +
            `Content-Length: ${xml.length + 200}\r\n\r\n${xml.slice(0, 20)}`,
        ),
      );
      c.close();
      conns.delete(c);
      return;
    }
    const up = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
    conns.add(up);
    await up.write(head);
    await Promise.all([
      c.readable.pipeTo(up.writable).catch(() => {}),
      up.readable.pipeTo(c.writable).catch(() => {}),
    ]);
  };
  (async () => {
    try {
      for await (const c of listener) {
        conns.add(c);
        serve(c).catch(() => {});
      }
    } catch { /* closed */ }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    cut: () => cut,
    close() {
      for (const c of conns) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      listener.close();
    },
  };
}

Deno.test("s3 creates a missing bucket even when the refusal of a streamed upload arrives cut off", async () => {
  // Swift refuses a PUT to a missing bucket before reading the body and hangs up; on a loaded
  // machine the client then sometimes reads the 404 without the body that says NoSuchBucket.
  const info = await startServer("swift");
  const bucket = uniqueName("fc-s3cut");
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "fc-s3-"));
  const token = await swiftToken(info);
  const proxy = cutFirstPut(Number(new URL(info.s3Endpoint).port));
  const t = await make(
    settings(info, bucket, { endpoint: `http://127.0.0.1:${proxy.port}` }),
    // One connection at a time, and none kept: the proxy decides per connection.
    testContext("s3", { maxConnections: 1 }),
  );
  try {
    const data = randomBytes(2 * MiB);
    const local = await tempFile(dir, data);
    const md5 = await md5Of(data);
    const r = await t.put(local, "first.bin", {
      signal,
      size: data.length,
      unprocessed: true,
      md5,
    });
    assertEquals(proxy.cut(), 1, "the first upload got the cut-off refusal");
    assertEquals(r.md5, md5);
    assertEquals(await md5Of((await swiftRead(info, token, bucket, "first.bin"))!), md5);
  } finally {
    await t.close();
    proxy.close();
    await s3Purge(info, bucket);
    await fs.rm(dir, { recursive: true, force: true });
  }
});

Deno.test("s3 sends Content-MD5: bytes that do not match are refused by the server (retry)", async () => {
  const info = await startServer("swift");
  const bucket = uniqueName("fc-s3md5");
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "fc-s3-"));
  const token = await swiftToken(info);
  const t = await make(settings(info, bucket));
  try {
    // Above 1 MiB the file is streamed with the MD5 the pipeline passed: a stale one must not be stored.
    const data = randomBytes(2 * MiB);
    const local = await tempFile(dir, data);
    await t.put(local, "ok.bin", {
      signal,
      size: data.length,
      unprocessed: true,
      md5: await md5Of(data),
    });
    const err = await assertRejects(
      () =>
        t.put(local, "bad.bin", {
          signal,
          size: data.length,
          unprocessed: true,
          md5: "0".repeat(32),
        }),
      ClassifiedError,
    );
    assertEquals((err as ClassifiedError).kind, "retry");
    assertIncludes(err.message, "BadDigest");
    assertEquals(await swiftRead(info, token, bucket, "bad.bin"), null);
    // A file that is shorter than the pipeline said is not uploaded either.
    await assertRejects(
      () => t.put(local, "short.bin", { signal, size: 10, unprocessed: true }),
      ClassifiedError,
    );
    assertEquals(await swiftRead(info, token, bucket, "short.bin"), null);
  } finally {
    await t.close();
    await s3Purge(info, bucket);
    await fs.rm(dir, { recursive: true, force: true });
  }
});

Deno.test("s3 uses the standard AWS credential chain when no keys are configured", async () => {
  const info = await startServer("swift");
  const bucket = uniqueName("fc-s3env");
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "fc-s3-"));
  const keys = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
  ];
  const saved = Object.fromEntries(keys.map((k) => [k, Deno.env.get(k)]));
  const noKeys = { ...settings(info, bucket) };
  delete noKeys.access_key_id;
  delete noKeys.secret_access_key;
  try {
    const local = await tempFile(dir, "from env");
    // 1. Environment variables.
    Deno.env.set("AWS_ACCESS_KEY_ID", info.accessKeyId);
    Deno.env.set("AWS_SECRET_ACCESS_KEY", info.secretAccessKey);
    Deno.env.set("AWS_CONFIG_FILE", path.join(dir, "no-config"));
    const t = await make(noKeys);
    await t.put(local, "env.txt", { signal, size: 8, unprocessed: true });
    await t.close();
    // 2. A shared credentials file with a named profile.
    Deno.env.delete("AWS_ACCESS_KEY_ID");
    Deno.env.delete("AWS_SECRET_ACCESS_KEY");
    const creds = path.join(dir, "credentials");
    await fs.writeFile(
      creds,
      `[fctest]\naws_access_key_id = ${info.accessKeyId}\naws_secret_access_key = ${info.secretAccessKey}\n`,
    );
    Deno.env.set("AWS_SHARED_CREDENTIALS_FILE", creds);
    Deno.env.set("AWS_PROFILE", "fctest");
    const t2 = await make(noKeys);
    await t2.put(local, "profile.txt", { signal, size: 8, unprocessed: true });
    await t2.close();
    const token = await swiftToken(info);
    assertEquals(
      await swiftRead(info, token, bucket, "env.txt"),
      new TextEncoder().encode("from env"),
    );
    assertEquals(
      await swiftRead(info, token, bucket, "profile.txt"),
      new TextEncoder().encode("from env"),
    );
  } finally {
    for (const k of keys) saved[k] === undefined ? Deno.env.delete(k) : Deno.env.set(k, saved[k]!);
    await s3Purge(info, bucket);
    await fs.rm(dir, { recursive: true, force: true });
  }
});

/**
 * A proxy to Swift that reads the request on its first `drop` connections and closes them
 * without an answer (what a client sees when the server closed a keep-alive connection as the
 * request went out); later connections are passed through.
 */
function dropFirst(
  targetPort: number,
  drop: number,
): { port: number; seen(): number; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  let seen = 0;
  const serve = async (c: Deno.Conn) => {
    if (seen++ < drop) {
      await c.read(new Uint8Array(65536));
      c.close();
      conns.delete(c);
      return;
    }
    const up = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
    conns.add(up);
    await Promise.all([
      c.readable.pipeTo(up.writable).catch(() => {}),
      up.readable.pipeTo(c.writable).catch(() => {}),
    ]);
  };
  (async () => {
    try {
      for await (const c of listener) {
        conns.add(c);
        serve(c).catch(() => {});
      }
    } catch { /* closed */ }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    seen: () => seen,
    close() {
      for (const c of conns) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      listener.close();
    },
  };
}

Deno.test("s3 sends a small request again when the connection closes without an answer", async () => {
  const info = await startServer("swift");
  const bucket = uniqueName("fc-s3drop");
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "fc-s3-"));
  const ready = await make(settings(info, bucket));
  const proxy = dropFirst(Number(new URL(info.s3Endpoint).port), 2);
  const t = await make(
    settings(info, bucket, { endpoint: `http://127.0.0.1:${proxy.port}`, create_bucket: "false" }),
  );
  try {
    const local = await tempFile(dir, "sent twice");
    // Creates the bucket through Swift directly, so that the proxy sees only the upload.
    await ready.put(local, "first.txt", { signal, size: 10, unprocessed: true });
    const r = await t.put(local, "again.txt", { signal, size: 10, unprocessed: true });
    assertEquals(r.md5, await md5Of(new TextEncoder().encode("sent twice")));
    assertEquals(proxy.seen(), 3, "two dropped connections, then one that answered");
    const token = await swiftToken(info);
    assertEquals(
      await swiftRead(info, token, bucket, "again.txt"),
      new TextEncoder().encode("sent twice"),
    );
  } finally {
    await t.close();
    await ready.close();
    proxy.close();
    await s3Purge(info, bucket);
    await fs.rm(dir, { recursive: true, force: true });
  }
});

Deno.test("s3 keeps to maxConnections and pools connections", async () => {
  const info = await startServer("swift");
  const bucket = uniqueName("fc-s3pool");
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "fc-s3-"));
  const proxy = TcpProxy.start(Number(new URL(info.s3Endpoint).port));
  const t = await make(
    settings(info, bucket, { endpoint: `http://127.0.0.1:${proxy.port}` }),
    testContext("pool", { maxConnections: 3 }),
  );
  try {
    const local = await tempFile(dir, "pooled");
    await t.put(local, "warm.txt", { signal, size: 6, unprocessed: true });
    await Promise.all(
      Array.from(
        { length: 24 },
        (_, i) => t.put(local, `p/f${i}.txt`, { signal, size: 6, unprocessed: true }),
      ),
    );
    assert(proxy.maxOpen <= 3, `${proxy.maxOpen} simultaneous connections, limit 3`);
    const token = await swiftToken(info);
    assertEquals(
      await swiftRead(info, token, bucket, "p/f23.txt"),
      new TextEncoder().encode("pooled"),
    );
  } finally {
    await t.close();
    proxy.close();
    await s3Purge(info, bucket);
    await fs.rm(dir, { recursive: true, force: true });
  }
});

Deno.test("s3 gives up on a server that never answers (server error, within the timeout)", async () => {
  const hole = blackHoleServer();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "fc-s3-"));
  const t = await make(
    {
      access_key_id: "k",
      secret_access_key: "s",
      bucket_name: "bkt",
      endpoint: `http://127.0.0.1:${hole.port}`,
      force_path_style: "true",
    },
    testContext("stalled", { timeoutMs: 600 }),
  );
  try {
    assert(isStater(t));
    let t0 = performance.now();
    const e1 = await assertRejects(() => t.stat("a.txt", { signal }), ClassifiedError);
    assertEquals((e1 as ClassifiedError).kind, "server");
    assert(performance.now() - t0 < 3000, "stat took too long");
    // A streamed upload (above 1 MiB) stalls after the first bytes: the idle timeout ends it.
    const local = await tempFile(dir, randomBytes(3 * MiB));
    t0 = performance.now();
    const e2 = await assertRejects(
      () => t.put(local, "big.bin", { signal, size: 3 * MiB, unprocessed: true }),
      ClassifiedError,
    );
    assertEquals((e2 as ClassifiedError).kind, "server");
    assert(performance.now() - t0 < 5000, `put took ${performance.now() - t0} ms`);
  } finally {
    await t.close();
    hole.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});

Deno.test("s3 path prefix: keys below path, listed and addressed without it", async () => {
  const info = await startServer("swift");
  const bucket = uniqueName("fc-s3path");
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "fc-s3-"));
  const token = await swiftToken(info);
  const t = await make(settings(info, bucket, { path: "static/v1" }));
  try {
    const local = await tempFile(dir, "p");
    await t.put(local, "css/a.css", { signal, size: 1, unprocessed: true });
    assertEquals(
      await swiftRead(info, token, bucket, "static/v1/css/a.css"),
      new TextEncoder().encode("p"),
    );
    const seen: string[] = [];
    for await (
      const e of (t as unknown as {
        list(p: string, o: { signal: AbortSignal }): AsyncIterable<{ path: string }>;
      }).list("", { signal })
    ) {
      seen.push(e.path);
    }
    assertEquals(seen, ["css/a.css"]);
    assertEquals(t.url("css/a b.css"), `${info.s3Endpoint}/${bucket}/static/v1/css/a%20b.css`);
  } finally {
    await t.close();
    await s3Purge(info, bucket);
    await fs.rm(dir, { recursive: true, force: true });
  }
});

Deno.test("s3 urls are plain, unsigned and percent-encoded in every style", async () => {
  const base = { bucket_name: "assets", access_key_id: "k", secret_access_key: "s" };
  const url = async (extra: Record<string, string>, p = "css/a b+c.css") => {
    const t = await make({ ...base, ...extra });
    const u = t.url(p);
    await t.close();
    return u;
  };
  assertEquals(await url({}), "https://assets.s3.us-east-1.amazonaws.com/css/a%20b%2Bc.css");
  assertEquals(
    await url({ region: "eu-west-1" }),
    "https://assets.s3.eu-west-1.amazonaws.com/css/a%20b%2Bc.css",
  );
  assertEquals(
    await url({ url_style: "path", region: "eu-west-1" }),
    "https://s3.eu-west-1.amazonaws.com/assets/css/a%20b%2Bc.css",
  );
  assertEquals(
    await url({ bucket_name: "www.example.com" }),
    "https://s3.us-east-1.amazonaws.com/www.example.com/css/a%20b%2Bc.css",
  );
  assertEquals(
    await url({ bucket_prefix: "my-", path: "static" }),
    "https://my-assets.s3.us-east-1.amazonaws.com/static/css/a%20b%2Bc.css",
  );
  assertEquals(
    await url({ url: "https://cdn.example.com/" }),
    "https://cdn.example.com/css/a%20b%2Bc.css",
  );
  assertEquals(
    await url({ endpoint: "https://minio.example.com:9000", force_path_style: "true" }),
    "https://minio.example.com:9000/assets/css/a%20b%2Bc.css",
  );
  assertEquals(
    await url({ endpoint: "https://r2.example.com" }),
    "https://assets.r2.example.com/css/a%20b%2Bc.css",
  );
  assert(!(await url({})).includes("?"), "signed URL");
});

Deno.test("s3 settings are validated without connecting", () => {
  assertEquals(problemsOf({ bucket_name: "bkt" }), []);
  assertIncludes(
    problemsOf({ bucket_name: "bkt", access_key_id: "k" }).join(),
    '"access_key_id" and "secret_access_key" go together',
  );
  assertIncludes(
    problemsOf({ bucket_name: "bkt", part_size: "1M" }).join(),
    'Setting "part_size" must be at least 5 MiB',
  );
  assertIncludes(
    problemsOf({ bucket_name: "bkt", multipart_threshold: "lots" }).join(),
    'Setting "multipart_threshold" must be a size',
  );
  assertIncludes(
    problemsOf({ bucket_name: "bkt", expires: "soon" }).join(),
    'Setting "expires" must be an HTTP date',
  );
  assertIncludes(
    problemsOf({ bucket_name: "bkt", checksum: "always" }).join(),
    'Setting "checksum" must be one of',
  );
  assertIncludes(
    problemsOf({ bucket_name: "bkt", acl: "public" }).join(),
    'Setting "acl" must be one of',
  );
  assertIncludes(problemsOf({ bucket_name: "bad/name" }).join(), "not a valid bucket name");
  assertIncludes(problemsOf({}).join(), 'Missing required setting "bucket_name"');
  const secret = getTransportDef("s3")!.options.filter((o) => o.secret).map((o) => o.name);
  assertEquals(secret.sort(), ["secret_access_key", "session_token"]);
});

Deno.test("s3 create() parses raw settings once (defaults, typed values) and refuses bad ones naming the server", async () => {
  const def = getTransportDef("s3")!;
  // Raw values as a caller without a config file passes them: no defaults filled in yet.
  const t = await def.create(
    { bucket_name: "bkt", endpoint: "http://127.0.0.1:9/", force_path_style: "Yes" },
    testContext("store"),
  );
  try {
    assertEquals(t.url("a b/c.css"), "http://127.0.0.1:9/bkt/a%20b/c.css");
  } finally {
    await t.close();
  }
  for (
    const [raw, expected] of [
      [{ bucket_name: "bkt", part_concurrency: "many" }, 'Setting "part_concurrency" must be'],
      [{ bucket_name: "bkt", force_path_style: "sometimes" }, 'Setting "force_path_style"'],
      [{ bucket_name: "bkt", part_size: "1M" }, 'Setting "part_size" must be at least 5 MiB'],
      [{ bucket_name: "bkt", colour: "red" }, 'Unknown setting "colour"'],
    ] as const
  ) {
    const err = await assertRejects(
      () => def.create(raw, testContext("store")),
      ClassifiedError,
    );
    assertEquals((err as ClassifiedError).kind, "fatal");
    assertIncludes(err.message, 'server "store"');
    assertIncludes(err.message, expected);
  }
});
