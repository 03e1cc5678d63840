import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import "../../src/transports/cf.ts";
import { ClassifiedError } from "../../src/errors.ts";
import { checkOptions, type OptionValues } from "../../src/options.ts";
import { planInvalidation } from "../../src/transports/_invalidation.ts";
import {
  type Flusher,
  getTransportDef,
  isFlusher,
  type Transport,
  type TransportContext,
} from "../../src/transports/transport.ts";
import { assert, assertEquals, assertIncludes, assertRejects } from "../_assert.ts";
import { startServer, type SwiftInfo } from "../_servers.ts";
import { type FakeCloudFront, startFakeCloudFront } from "./_cloudfront_server.ts";
import { conformance } from "./_conformance.ts";
import {
  rcloneS3,
  s3Purge,
  swiftHeaders,
  swiftRead,
  swiftToken,
  tempFile,
  testContext,
  uniqueName,
} from "./_swift_helpers.ts";

const signal = new AbortController().signal;
const DOMAIN = "d111111abcdef8.cloudfront.net";
const DIST = "EDFDVBD6EXAMPLE";

function settings(
  info: SwiftInfo,
  bucket: string,
  fake: FakeCloudFront,
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
    distro_domain_name: DOMAIN,
    distribution_id: DIST,
    cloudfront_endpoint: fake.endpoint,
    invalidation_delay: "30",
    ...extra,
  };
}

async function make(
  raw: Record<string, string>,
  ctx: TransportContext = testContext("cdn"),
): Promise<Transport & Flusher> {
  const def = getTransportDef("cf")!;
  const { values, problems } = checkOptions(def.options, raw);
  assertEquals(problems, []);
  assertEquals(def.validate!(values as OptionValues), []);
  const t = await def.create(values, ctx);
  assert(isFlusher(t));
  return t;
}

function fakeFor(info: SwiftInfo, secret = info.secretAccessKey): FakeCloudFront {
  return startFakeCloudFront({
    credentials: { [info.accessKeyId]: secret },
    distributions: [DIST],
  });
}

async function mkBucket(info: SwiftInfo, bucket: string): Promise<string> {
  await rcloneS3(info, ["mkdir", `:s3:${bucket}`]);
  return bucket;
}

/** A stand-in for S3 that accepts every DELETE (to make thousands of deletes cheap). */
function deleteOnlyS3(): { endpoint: string; close(): Promise<void> } {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    return new Response(null, { status: req.method === "DELETE" ? 204 : 404 });
  });
  return { endpoint: `http://127.0.0.1:${server.addr.port}`, close: () => server.shutdown() };
}

Deno.test("cf passes the conformance suite (S3 part on Swift, invalidations on the fake CloudFront)", async (t) => {
  const info = await startServer("swift");
  const fake = fakeFor(info);
  const bucket = uniqueName("fc-cf");
  const token = await swiftToken(info);
  try {
    await conformance(t, {
      transporter: "cf",
      transport: async () => {
        const cf = await make(
          settings(info, bucket, fake, { multipart_threshold: "5M", part_size: "5M" }),
        );
        // The pipeline flushes before it closes; do the same so the invalidations can be checked.
        const close = cf.close.bind(cf);
        cf.close = async () => {
          await cf.flush({ signal });
          await close();
        };
        return cf;
      },
      readBack: (p) => swiftRead(info, token, bucket, p),
      readHeaders: (p) => swiftHeaders(info, token, bucket, p),
      urlPrefix: `https://${DOMAIN}/`,
    });
    await t.step("only overwritten, deleted and moved-away files were invalidated", () => {
      const paths = new Set(fake.invalidations.flatMap((i) => i.paths));
      for (const p of ["/a.txt", "/x/y/z/deep.css", "/never/existed.txt", "/mv/from.txt"]) {
        assert(paths.has(p), `${p} not invalidated: ${[...paths].join(" ")}`);
      }
      for (
        const p of ["/par/f0.txt", "/big/large.bin", "/mv/sub/to.txt", "/odd/with%20space.txt"]
      ) {
        assert(!paths.has(p), `${p} (a new file) was invalidated`);
      }
      assertEquals(fake.refused, []);
    });
  } finally {
    await fake.close();
    await s3Purge(info, bucket);
  }
});

Deno.test("cf coalesces many changes into one invalidation; flush sends it at once", async () => {
  const info = await startServer("swift");
  const fake = fakeFor(info);
  const bucket = uniqueName("fc-cfb");
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "fc-cf-"));
  const t = await make(settings(info, bucket, fake, { path: "static" }));
  try {
    const v1 = await tempFile(dir, "one");
    const v2 = await tempFile(dir, "two");
    const names = Array.from({ length: 20 }, (_, i) => `css/f${i}.css`);
    await Promise.all(names.map((n) => t.put(v1, n, { signal, size: 3, unprocessed: true })));
    // First uploads: nothing cached at the edge, nothing to invalidate.
    await t.flush({ signal });
    assertEquals(fake.invalidations.length, 0);
    await Promise.all(names.map((n) => t.put(v2, n, { signal, size: 3, unprocessed: true })));
    // The same content again changes nothing.
    await Promise.all(
      names.slice(0, 5).map((n) => t.put(v2, n, { signal, size: 3, unprocessed: true })),
    );
    await Promise.all(names.slice(10).map((n) => t.delete(n, { signal })));
    assertEquals(fake.invalidations.length, 0, "sent before the window ended");
    await t.flush({ signal });
    assertEquals(fake.invalidations.length, 1);
    const inv = fake.invalidations[0]!;
    assertEquals(inv.distributionId, DIST);
    assertEquals(inv.paths.length, 20);
    assertEquals(new Set(inv.paths), new Set(names.map((n) => `/static/${n}`)));
    assert(inv.callerReference.startsWith("fileconveyor-"), inv.callerReference);
    // Nothing pending: another flush sends nothing.
    await t.flush({ signal });
    assertEquals(fake.invalidations.length, 1);
  } finally {
    await t.close();
    await fake.close();
    await s3Purge(info, bucket);
    await fs.rm(dir, { recursive: true, force: true });
  }
});

Deno.test("cf sends pending invalidations by itself when the window ends", async () => {
  const info = await startServer("swift");
  const fake = fakeFor(info);
  const bucket = await mkBucket(info, uniqueName("fc-cft"));
  // The window opens with the first change. It must outlast the S3 deletes that fill it: on
  // a loaded machine one delete can take more than 0.3 s, and the two changes then went out
  // as two requests. The deletes run at once, so only the difference of their times counts.
  const t = await make(settings(info, bucket, fake, { invalidation_delay: "2" }));
  try {
    await Promise.all([
      t.delete("gone/a.css", { signal }),
      t.delete("gone/b.css", { signal }),
    ]);
    assertEquals(fake.invalidations.length, 0, "sent before the window ended");
    // Nobody flushes: the transport sends when the window ends (bounded wait).
    const deadline = Date.now() + 20_000;
    while (fake.invalidations.length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assertEquals(fake.invalidations.map((i) => i.paths), [["/gone/a.css", "/gone/b.css"]]);
  } finally {
    await t.close();
    await fake.close();
    await s3Purge(info, bucket);
  }
});

Deno.test("cf falls back to wildcards beyond 3,000 paths", async () => {
  const info = await startServer("swift");
  const fake = fakeFor(info);
  // Swift manages ~110 deletes/s here; a stand-in S3 keeps 3,400 deletes fast. The CloudFront side is the fake as everywhere.
  const s3 = deleteOnlyS3();
  const t = await make(
    settings(info, "bkt", fake, { endpoint: s3.endpoint, create_bucket: "false" }),
    testContext("cdn", { maxConnections: 32 }),
  );
  try {
    const keys = [
      ...Array.from({ length: 2000 }, (_, i) => `img/a/${i}.png`),
      ...Array.from({ length: 1200 }, (_, i) => `img/b/${i}.png`),
      ...Array.from({ length: 200 }, (_, i) => `css/${i}.css`),
      "index.html",
    ];
    let next = 0;
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (next < keys.length) await t.delete(keys[next++]!, { signal });
    }));
    await t.flush({ signal });
    assertEquals(fake.invalidations.length, 1);
    const paths = fake.invalidations[0]!.paths;
    assert(paths.length <= 3000, `${paths.length} paths`);
    assert(paths.filter((p) => p.includes("*")).length <= 15);
    assert(paths.includes("/img/a/*"), paths.slice(0, 5).join(" "));
    assert(paths.includes("/index.html"));
    assertEquals(fake.refused, []);
  } finally {
    await t.close();
    await fake.close();
    await s3.close();
  }
});

Deno.test("planInvalidation stays within CloudFront's limits", () => {
  assertEquals(planInvalidation(["b c/d#e.css", "a.css", "a.css"]), ["/a.css", "/b%20c/d%23e.css"]);
  // Fits: no wildcards.
  assertEquals(planInvalidation(Array.from({ length: 3000 }, (_, i) => `x/${i}`)).length, 3000);
  // The fullest deep directories become wildcards first.
  const deep = [...Array.from({ length: 3500 }, (_, i) => `a/b/${i}`), "a/c/1", "top"];
  assertEquals(planInvalidation(deep), ["/a/b/*", "/a/c/1", "/top"]);
  // More than 15 directories needed at the deepest level: go one level up.
  const wide = Array.from({ length: 6000 }, (_, i) => `site/d${i % 40}/${i}`);
  assertEquals(planInvalidation(wide), ["/site/*"]);
  // Only as many wildcards as needed to fit, the rest as files.
  const some = planInvalidation(Array.from({ length: 4000 }, (_, i) => `site/d${i % 40}/${i}`));
  assertEquals(some.filter((p) => p.endsWith("/*")).length, 11);
  assertEquals(some.length, 11 + 2900);
  // Files only at the root, too many: everything.
  assertEquals(planInvalidation(Array.from({ length: 3001 }, (_, i) => `${i}.css`)), ["/*"]);
  // Small limits, to see the mixing of wildcards and files.
  const mixed = planInvalidation(["a/1", "a/2", "a/3", "b/1", "c"], 3, 1);
  assertEquals(mixed, ["/a/*", "/b/1", "/c"]);
});

Deno.test("cf retries when CloudFront throttles", async () => {
  const info = await startServer("swift");
  const fake = fakeFor(info);
  const t = await make(settings(info, await mkBucket(info, uniqueName("fc-cfr")), fake));
  try {
    fake.failNext("Throttling", 1);
    fake.failNext("TooManyInvalidationsInProgress", 1);
    await t.delete("a.css", { signal });
    await t.flush({ signal });
    assertEquals(fake.refused.map((r) => r.code), ["Throttling", "TooManyInvalidationsInProgress"]);
    assertEquals(fake.invalidations.length, 1);
    // Every attempt carried the same caller reference (CloudFront de-duplicates retries by it).
    assertEquals(fake.invalidations[0]!.paths, ["/a.css"]);
  } finally {
    await t.close();
    await fake.close();
  }
});

Deno.test("cf: a wrong secret is refused by CloudFront's signature check, as a server error without the secret", async () => {
  const info = await startServer("swift");
  const fake = fakeFor(info, "a-different-secret");
  const bucket = await mkBucket(info, uniqueName("fc-cfs"));
  const t = await make(settings(info, bucket, fake), testContext("cdn"));
  try {
    await t.delete("a.css", { signal });
    const err = await assertRejects(() => t.flush({ signal }), ClassifiedError);
    assertEquals((err as ClassifiedError).kind, "server");
    assertIncludes(err.message, `distribution "${DIST}" of server "cdn"`);
    assertIncludes(err.message, "SignatureDoesNotMatch");
    assert(!err.message.includes(info.secretAccessKey), "secret in message");
    assertEquals(fake.refused.map((r) => r.code), ["SignatureDoesNotMatch"]);
    assertEquals(fake.invalidations.length, 0);
    // The paths are kept for a later try.
    assertEquals((t as unknown as { pendingInvalidations: number }).pendingInvalidations, 1);
  } finally {
    await t.close();
    await fake.close();
  }
});

Deno.test("cf: an unknown distribution is a clear server error", async () => {
  const info = await startServer("swift");
  const fake = fakeFor(info);
  const t = await make(
    settings(info, await mkBucket(info, uniqueName("fc-cfd")), fake, {
      distribution_id: "ENOSUCHDIST",
    }),
  );
  try {
    await t.delete("a.css", { signal });
    const err = await assertRejects(() => t.flush({ signal }), ClassifiedError);
    assertEquals((err as ClassifiedError).kind, "server");
    assertIncludes(err.message, 'distribution "ENOSUCHDIST"');
    assertIncludes(err.message, "does not exist (NoSuchDistribution");
  } finally {
    await t.close();
    await fake.close();
  }
});

Deno.test("cf without distribution_id never invalidates; URLs use the distribution's domain", async () => {
  const info = await startServer("swift");
  const fake = fakeFor(info);
  const bucket = uniqueName("fc-cfn");
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "fc-cf-"));
  const raw = settings(info, bucket, fake, { path: "s" });
  delete raw.distribution_id;
  const t = await make(raw);
  const t2 = await make(
    settings(info, bucket, fake, { distro_domain_name: "http://cdn.example.com/" }),
  );
  try {
    const f = await tempFile(dir, "x");
    await t.put(f, "a.css", { signal, size: 1, unprocessed: true });
    await t.put(f, "a.css", { signal, size: 1, unprocessed: true });
    await t.delete("a.css", { signal });
    await t.flush({ signal });
    assertEquals(fake.invalidations.length, 0);
    assertEquals(t.url("img/a b.png"), `https://${DOMAIN}/s/img/a%20b.png`);
    assertEquals(t2.url("img/a b.png"), "http://cdn.example.com/img/a%20b.png");
    assert(!t.url("x").includes("?"), "signed URL");
  } finally {
    await t.close();
    await t2.close();
    await fake.close();
    await s3Purge(info, bucket);
    await fs.rm(dir, { recursive: true, force: true });
  }
});

Deno.test("cf settings: distro_domain_name is required and checked", () => {
  const def = getTransportDef("cf")!;
  const check = (raw: Record<string, string>) => {
    const { values, problems } = checkOptions(def.options, raw);
    return [...problems.map((p) => p.message), ...def.validate!(values)].join("\n");
  };
  assertIncludes(check({ bucket_name: "bkt" }), 'Missing required setting "distro_domain_name"');
  assertIncludes(
    check({ bucket_name: "bkt", distro_domain_name: "not a domain" }),
    "distro_domain_name",
  );
  assertIncludes(
    check({ bucket_name: "bkt", distro_domain_name: DOMAIN, distribution_id: "bad id" }),
    "distribution_id",
  );
  assertEquals(
    check({ bucket_name: "bkt", distro_domain_name: DOMAIN, distribution_id: DIST }),
    "",
  );
  assertEquals(getTransportDef("cloudfront"), def);
});

Deno.test("cf create() refuses bad settings naming the server, before loading the client", async () => {
  const def = getTransportDef("cf")!;
  const base = { bucket_name: "bkt", distro_domain_name: "d1.cloudfront.net" };
  for (
    const [raw, expected] of [
      [{ ...base, invalidation_delay: "soon" }, 'Setting "invalidation_delay" must be a number'],
      [{ ...base, invalidate_new: "maybe" }, 'Setting "invalidate_new" must be true or false'],
      [{ ...base, distribution_id: "not an id" }, 'Setting "distribution_id" must look like'],
      [{ bucket_name: "bkt" }, 'Missing required setting "distro_domain_name"'],
    ] as const
  ) {
    const err = await assertRejects(() => def.create(raw, testContext("cdn")), ClassifiedError);
    assertEquals((err as ClassifiedError).kind, "fatal");
    assertIncludes(err.message, 'server "cdn"');
    assertIncludes(err.message, expected);
  }
  // Raw values without defaults: parsed once at create(), URLs from the distribution's domain.
  const t = await def.create({ ...base, path: "static" }, testContext("cdn"));
  try {
    assertEquals(t.url("a b.css"), "https://d1.cloudfront.net/static/a%20b.css");
  } finally {
    await t.close();
  }
});
