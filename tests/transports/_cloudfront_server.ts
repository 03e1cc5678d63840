/**
 * A loopback stand-in for the CloudFront API (no local CloudFront exists).
 * It recomputes every request's SigV4 signature (service `cloudfront`,
 * region `us-east-1`) with `@smithy/signature-v4` and refuses mismatches,
 * checks the invalidation path and XML body like CloudFront does (quantity,
 * caller reference, 3,000 paths, 15 wildcards) and answers like CloudFront
 * (201 with `Location` and an `Invalidation` document; `GetInvalidation`).
 * Faults can be injected: throttling, unknown distributions.
 *
 * @module
 */
import { Sha256 } from "@aws-crypto/sha256-js";
import { SignatureV4 } from "@smithy/signature-v4";

const NS = "http://cloudfront.amazonaws.com/doc/2020-05-31/";

/** One accepted invalidation. */
export interface FakeInvalidation {
  id: string;
  distributionId: string;
  callerReference: string;
  paths: string[];
  createTime: string;
}

/** Options for {@linkcode startFakeCloudFront}. */
export interface FakeCloudFrontOptions {
  /** Access key ID → secret access key. */
  credentials: Record<string, string>;
  /** Distribution IDs that exist. */
  distributions: string[];
}

/** A running fake. */
export interface FakeCloudFront {
  /** `http://127.0.0.1:PORT`, for the `cloudfront_endpoint` setting. */
  endpoint: string;
  /** Accepted invalidations, oldest first. */
  invalidations: FakeInvalidation[];
  /** Every refused request: HTTP status and error code. */
  refused: { status: number; code: string; message: string }[];
  /** Makes the next `count` create requests fail with `code` (e.g. Throttling). */
  failNext(
    code: "Throttling" | "TooManyInvalidationsInProgress" | "ServiceUnavailable",
    count: number,
  ): void;
  /** Stops the server. */
  close(): Promise<void>;
}

function xmlEscape(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(
    /"/g,
    "&quot;",
  );
}

function xmlUnescape(s: string): string {
  return s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(
    /&apos;/g,
    "'",
  )
    .replace(/&#(\d+);/g, (_, n) => String.fromCodePoint(Number(n)))
    .replace(/&#x([0-9a-f]+);/gi, (_, n) => String.fromCodePoint(parseInt(n, 16)))
    .replace(/&amp;/g, "&");
}

function errorResponse(status: number, code: string, message: string, type = "Sender"): Response {
  const body =
    `<?xml version="1.0"?>\n<ErrorResponse xmlns="${NS}"><Error><Type>${type}</Type><Code>${code}</Code>` +
    `<Message>${
      xmlEscape(message)
    }</Message></Error><RequestId>${crypto.randomUUID()}</RequestId></ErrorResponse>`;
  return new Response(body, {
    status,
    headers: { "Content-Type": "text/xml", "x-amzn-RequestId": crypto.randomUUID() },
  });
}

function invalidationXml(inv: FakeInvalidation, status: string): string {
  const items = inv.paths.map((p) => `<Path>${xmlEscape(p)}</Path>`).join("");
  return `<?xml version="1.0"?>\n<Invalidation xmlns="${NS}"><Id>${inv.id}</Id><Status>${status}</Status>` +
    `<CreateTime>${inv.createTime}</CreateTime><InvalidationBatch><Paths><Quantity>${inv.paths.length}</Quantity>` +
    `<Items>${items}</Items></Paths><CallerReference>${
      xmlEscape(inv.callerReference)
    }</CallerReference>` +
    `</InvalidationBatch></Invalidation>`;
}

/** Checks the SigV4 signature of a request; returns an error response or undefined when valid. */
async function verify(
  req: Request,
  url: URL,
  body: string,
  creds: Record<string, string>,
): Promise<Response | undefined> {
  const auth = req.headers.get("authorization") ?? "";
  const m =
    /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/
      .exec(auth);
  if (!m) {
    return errorResponse(
      403,
      "MissingAuthenticationToken",
      "Request is missing a valid SigV4 Authorization header",
    );
  }
  const [, keyId, , region, service, signedHeaders] = m;
  if (region !== "us-east-1" || service !== "cloudfront") {
    return errorResponse(
      403,
      "SignatureDoesNotMatch",
      `Credential should be scoped to us-east-1/cloudfront, not ${region}/${service}`,
    );
  }
  const secret = creds[keyId!];
  if (secret === undefined) {
    return errorResponse(
      403,
      "InvalidClientTokenId",
      "The security token included in the request is invalid.",
    );
  }
  const amzDate = req.headers.get("x-amz-date") ?? "";
  const dm = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate);
  if (!dm) return errorResponse(403, "IncompleteSignature", "Missing or malformed X-Amz-Date");
  const signingDate = new Date(Date.UTC(+dm[1]!, +dm[2]! - 1, +dm[3]!, +dm[4]!, +dm[5]!, +dm[6]!));
  if (Math.abs(Date.now() - signingDate.getTime()) > 15 * 60_000) {
    return errorResponse(
      403,
      "SignatureDoesNotMatch",
      "Signature expired: the request time is too skewed",
    );
  }
  const names = signedHeaders!.split(";");
  if (!names.includes("host")) {
    return errorResponse(403, "SignatureDoesNotMatch", "The host header must be signed");
  }
  const headers: Record<string, string> = {};
  for (const n of names) {
    const v = req.headers.get(n);
    if (v === null) {
      return errorResponse(403, "SignatureDoesNotMatch", `Signed header "${n}" is missing`);
    }
    headers[n] = v;
  }
  const query: Record<string, string | string[]> = {};
  for (const [k, v] of url.searchParams) {
    const prev = query[k];
    query[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  const signer = new SignatureV4({
    credentials: { accessKeyId: keyId!, secretAccessKey: secret },
    region: "us-east-1",
    service: "cloudfront",
    sha256: Sha256,
  });
  const signed = await signer.sign({
    method: req.method,
    protocol: url.protocol,
    hostname: url.hostname,
    ...(url.port ? { port: Number(url.port) } : {}),
    path: decodeURIComponent(url.pathname),
    query,
    headers,
    body,
  }, { signingDate, signableHeaders: new Set(names) });
  const expected = signed.headers["authorization"] ?? signed.headers["Authorization"];
  if (expected !== auth) {
    return errorResponse(
      403,
      "SignatureDoesNotMatch",
      "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
    );
  }
  return undefined;
}

/** Starts the fake on a free loopback port. */
export function startFakeCloudFront(options: FakeCloudFrontOptions): FakeCloudFront {
  const invalidations: FakeInvalidation[] = [];
  const refused: FakeCloudFront["refused"] = [];
  const faults: string[] = [];
  let seq = 0;

  async function handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const body = await req.text();
    const bad = await verify(req, url, body, options.credentials);
    if (bad) return bad;
    const create = /^\/2020-05-31\/distribution\/([^/]+)\/invalidation$/.exec(url.pathname);
    const get = /^\/2020-05-31\/distribution\/([^/]+)\/invalidation\/([^/]+)$/.exec(url.pathname);
    const distributionId = decodeURIComponent((create ?? get)?.[1] ?? "");
    if (!create && !get) {
      return errorResponse(
        404,
        "UnknownOperation",
        `No such operation: ${req.method} ${url.pathname}`,
      );
    }
    if (!options.distributions.includes(distributionId)) {
      return errorResponse(404, "NoSuchDistribution", "The specified distribution does not exist.");
    }
    if (get) {
      if (req.method !== "GET") return errorResponse(405, "MethodNotAllowed", "Use GET");
      const inv = invalidations.find((i) => i.id === get[2] && i.distributionId === distributionId);
      if (!inv) {
        return errorResponse(
          404,
          "NoSuchInvalidation",
          "The specified invalidation does not exist.",
        );
      }
      return new Response(invalidationXml(inv, "Completed"), {
        headers: { "Content-Type": "text/xml" },
      });
    }
    if (req.method !== "POST") return errorResponse(405, "MethodNotAllowed", "Use POST");
    const fault = faults.shift();
    if (fault === "ServiceUnavailable") {
      return errorResponse(503, fault, "CloudFront is unavailable", "Receiver");
    }
    if (fault) return errorResponse(400, fault, `Fault injected: ${fault}`);
    if (!body.includes(`<InvalidationBatch xmlns="${NS}"`)) {
      return errorResponse(
        400,
        "MalformedXML",
        "The XML document is not an InvalidationBatch in the 2020-05-31 namespace",
      );
    }
    const quantity = Number(/<Quantity>(\d+)<\/Quantity>/.exec(body)?.[1] ?? "NaN");
    const paths = [...body.matchAll(/<Path>([^<]*)<\/Path>/g)].map((p) => xmlUnescape(p[1]!));
    const callerReference = xmlUnescape(
      /<CallerReference>([^<]*)<\/CallerReference>/.exec(body)?.[1] ?? "",
    );
    if (!callerReference) return errorResponse(400, "MissingBody", "CallerReference is required");
    if (quantity !== paths.length) {
      return errorResponse(
        400,
        "InconsistentQuantities",
        `Quantity ${quantity} differs from ${paths.length} paths`,
      );
    }
    if (paths.length === 0) {
      return errorResponse(400, "InvalidArgument", "At least one path is required");
    }
    if (paths.length > 3000) {
      return errorResponse(400, "BatchTooLarge", "Invalidation batch specified is too large.");
    }
    if (paths.filter((p) => p.includes("*")).length > 15) {
      return errorResponse(
        400,
        "TooManyInvalidationsInProgress",
        "Too many wildcard invalidation paths in progress.",
      );
    }
    const badPath = paths.find((p) => !p.startsWith("/") || /[\s"<>]/.test(p));
    if (badPath !== undefined) {
      return errorResponse(400, "InvalidArgument", `Path "${badPath}" is not valid`);
    }
    const same = invalidations.find((i) =>
      i.distributionId === distributionId && i.callerReference === callerReference
    );
    if (same) {
      if (JSON.stringify(same.paths) !== JSON.stringify(paths)) {
        return errorResponse(
          409,
          "InvalidationBatchAlreadyExists",
          "The caller reference was used for another batch.",
        );
      }
      return created(same);
    }
    const inv: FakeInvalidation = {
      id: `I${String(++seq).padStart(4, "0")}FAKE${crypto.randomUUID().slice(0, 6).toUpperCase()}`,
      distributionId,
      callerReference,
      paths,
      createTime: new Date().toISOString(),
    };
    invalidations.push(inv);
    return created(inv);
  }

  function created(inv: FakeInvalidation): Response {
    return new Response(invalidationXml(inv, "InProgress"), {
      status: 201,
      headers: {
        "Content-Type": "text/xml",
        Location:
          `https://cloudfront.amazonaws.com/2020-05-31/distribution/${inv.distributionId}/invalidation/${inv.id}`,
        "x-amzn-RequestId": crypto.randomUUID(),
      },
    });
  }

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const res = await handle(req).catch((err) =>
      errorResponse(500, "InternalError", String(err), "Receiver")
    );
    if (res.status >= 400) {
      const text = await res.clone().text();
      refused.push({
        status: res.status,
        code: /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? "",
        message: xmlUnescape(/<Message>([^<]*)<\/Message>/.exec(text)?.[1] ?? ""),
      });
    }
    return res;
  });

  return {
    endpoint: `http://127.0.0.1:${server.addr.port}`,
    invalidations,
    refused,
    failNext(code, count) {
      for (let i = 0; i < count; i++) faults.push(code);
    },
    async close() {
      await server.shutdown();
    },
  };
}
