import { createHash, createHmac } from "node:crypto";
import { SignatureV4 } from "@smithy/signature-v4";
import { amzDate, HmacSha256, SigV4Signer, UNSIGNED_PAYLOAD } from "../../src/transports/_sigv4.ts";
import { crc32Base64, objectOutput, parseError } from "../../src/transports/_s3_lean.ts";
import { encodePath } from "../../src/transports/paths.ts";
import { assertEquals } from "../_assert.ts";

// The example of the S3 documentation, "Signature Calculations for the Authorization
// Header: Transferring Payload in a Single Chunk (AWS Signature Version 4)".
const DOC_CREDS = {
  accessKeyId: "AKIAIOSFODNN7EXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
};
const DOC_DATE = new Date("2013-05-24T00:00:00Z");
const signatureOf = (h: Record<string, string>) =>
  /Signature=([0-9a-f]{64})$/.exec(h.authorization!)?.[1];

Deno.test("sigv4 reproduces the S3 documentation's GET example", () => {
  const h = new SigV4Signer(DOC_CREDS, "us-east-1").sign({
    method: "GET",
    host: "examplebucket.s3.amazonaws.com",
    path: "/test.txt",
    headers: { Range: "bytes=0-9" },
    payloadHash: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  }, DOC_DATE);
  assertEquals(
    signatureOf(h),
    "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
  );
  assertEquals(h["x-amz-date"], "20130524T000000Z");
  assertEquals(
    h.authorization!.split(", ").slice(0, 2).join(", "),
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date",
  );
});

Deno.test("sigv4 reproduces the S3 documentation's PUT example (key encoded once)", () => {
  const payload = "Welcome to Amazon S3.";
  const h = new SigV4Signer(DOC_CREDS, "us-east-1").sign({
    method: "PUT",
    host: "examplebucket.s3.amazonaws.com",
    path: "/" + encodePath("test$file.text"),
    headers: {
      Date: "Fri, 24 May 2013 00:00:00 GMT",
      "x-amz-storage-class": "REDUCED_REDUNDANCY",
    },
    payloadHash: createHash("sha256").update(payload).digest("hex"),
  }, DOC_DATE);
  assertEquals(
    signatureOf(h),
    "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
  );
});

Deno.test("sigv4 agrees with @smithy/signature-v4 on keys with special characters, tokens and queries", async () => {
  const creds = { accessKeyId: "AKID", secretAccessKey: "secret/+key", sessionToken: "tok==" };
  class Sha256 {
    #h;
    constructor(secret?: string | Uint8Array) {
      this.#h = secret ? createHmac("sha256", secret) : createHash("sha256");
    }
    update(d: string | Uint8Array) {
      this.#h.update(d);
    }
    digest() {
      return Promise.resolve(new Uint8Array(this.#h.digest()));
    }
  }
  const smithy = new SignatureV4({
    credentials: creds,
    region: "eu-west-3",
    service: "s3",
    sha256: Sha256 as never,
    uriEscapePath: false,
    applyChecksum: false,
  });
  const ours = new SigV4Signer(creds, "eu-west-3");
  const now = new Date("2026-02-03T04:05:06Z");
  for (
    const key of ["a b/c+d.txt", "ünïcode/ß/(1)!*'.css", "deep/a%20b/~tilde_-.x", "x//y"]
  ) {
    const headers = {
      "Content-Type": "text/css;  charset=utf-8",
      "content-md5": "1B2M2Y8AsgTpgAmY7PhCfg==",
      "x-amz-acl": "public-read",
      "x-amz-meta-note": "  two  spaces ",
    };
    const path = "/bkt/" + encodePath(key);
    const query = { "list-type": "2", prefix: key };
    const mine = ours.sign(
      {
        method: "PUT",
        host: "s3.example.com:9000",
        path,
        query,
        headers,
        payloadHash: UNSIGNED_PAYLOAD,
      },
      now,
    );
    const theirs = await smithy.sign({
      method: "PUT",
      protocol: "https:",
      hostname: "s3.example.com",
      port: 9000,
      path,
      query,
      headers: {
        ...headers,
        host: "s3.example.com:9000",
        "x-amz-content-sha256": UNSIGNED_PAYLOAD,
      },
    }, { signingDate: now });
    assertEquals(mine.authorization, theirs.headers.authorization, key);
    assertEquals(mine["x-amz-security-token"], "tok==");
  }
  assertEquals(amzDate(now), "20260203T040506Z");
});

Deno.test("lean S3 helpers read error bodies, object headers and CRC32 like the SDK", () => {
  assertEquals(
    parseError(
      '<?xml version="1.0"?><Error><Code>NoSuchBucket</Code><Message>The bucket &amp; key</Message></Error>',
    ),
    { code: "NoSuchBucket", message: "The bucket & key" },
  );
  assertEquals(parseError("<CopyObjectResult><ETag>x</ETag></CopyObjectResult>"), undefined);
  const out = objectOutput(
    new Headers({
      etag: '"d41d8cd98f00b204e9800998ecf8427e"',
      "content-length": "12",
      "last-modified": "Tue, 20 Jan 2037 03:00:00 GMT",
      "x-amz-meta-md5chksum": "1B2M2Y8AsgTpgAmY7PhCfg==",
      "x-amz-server-side-encryption": "aws:kms",
    }),
  );
  assertEquals(out.ContentLength, 12);
  assertEquals(out.LastModified?.getTime(), Date.UTC(2037, 0, 20, 3));
  assertEquals(out.Metadata, { md5chksum: "1B2M2Y8AsgTpgAmY7PhCfg==" });
  assertEquals(out.ServerSideEncryption, "aws:kms");
  // CRC32 of "123456789" is 0xCBF43926 (the check value of the standard).
  assertEquals(crc32Base64(new TextEncoder().encode("123456789")), "y/Q5Jg==");
});

Deno.test("the pad-based HMAC-SHA-256 equals node:crypto's for every key length and message", () => {
  const messages = [
    "",
    "AWS4-HMAC-SHA256\n20260203T040506Z\nscope\nabc",
    "ünïcode ß €",
    "x".repeat(2000),
  ];
  for (const len of [0, 1, 32, 63, 64, 65, 200]) {
    const key = new Uint8Array(len).map((_, i) => (i * 37 + len) & 255);
    const mac = new HmacSha256(key);
    for (const m of messages) {
      assertEquals(
        mac.hex(m),
        createHmac("sha256", key).update(m).digest("hex"),
        `${len} ${m.length}`,
      );
    }
  }
});

Deno.test("sigv4 signs the host without returning it, and signs again in the next second and day", () => {
  const signer = new SigV4Signer(DOC_CREDS, "us-east-1");
  const req = {
    method: "GET",
    host: "examplebucket.s3.amazonaws.com",
    path: "/test.txt",
    headers: { Range: "bytes=0-9", Host: "ignored.example" },
    payloadHash: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  };
  const h = signer.sign(req, DOC_DATE);
  assertEquals(h.host, undefined);
  assertEquals(signatureOf(h), "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  // A later date (another second, then another day) gives its own date and scope.
  const later = signer.sign(req, new Date("2013-05-25T00:00:01Z"));
  assertEquals(later["x-amz-date"], "20130525T000001Z");
  assertEquals(later.authorization!.includes("/20130525/us-east-1/s3/aws4_request"), true);
  assertEquals(signatureOf(signer.sign(req, DOC_DATE)), signatureOf(h));
});
