/**
 * The S3 ceiling: a minimal concurrent client that only PUTs files (fetch
 * with SigV4 from `@smithy/signature-v4`, unsigned payload, keep-alive
 * connections), so fileconveyor's throughput can be stated as a fraction of
 * what the server allows. No retries, no verification beyond the status,
 * no bookkeeping: nothing a real sync tool could drop.
 *
 * @module
 */
import { SignatureV4 } from "@smithy/signature-v4";
import { createHash, createHmac } from "node:crypto";
import * as fs from "node:fs";

/** Where and how to PUT. */
export interface S3Target {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  bucket: string;
}

/** SHA-256 / HMAC-SHA-256 for the signer, from node:crypto (the pure-JS one is slower). */
class NodeSha256 {
  readonly #h: ReturnType<typeof createHash> | ReturnType<typeof createHmac>;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#h = secret ? createHmac("sha256", bytes(secret)) : createHash("sha256");
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.#h.update(bytes(data));
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.#h.digest()));
  }
}

function bytes(d: string | ArrayBuffer | ArrayBufferView): string | Uint8Array {
  if (typeof d === "string") return d;
  if (d instanceof ArrayBuffer) return new Uint8Array(d);
  return new Uint8Array(d.buffer as ArrayBuffer, d.byteOffset, d.byteLength);
}

function encodeKey(key: string): string {
  return key.split("/").map(encodeURIComponent).join("/");
}

/** A signed S3 request sender bound to one target. */
export class MiniS3 {
  readonly #t: S3Target;
  readonly #signer: SignatureV4;
  readonly #url: URL;

  constructor(target: S3Target) {
    this.#t = target;
    this.#url = new URL(target.endpoint);
    this.#signer = new SignatureV4({
      credentials: { accessKeyId: target.accessKeyId, secretAccessKey: target.secretAccessKey },
      region: target.region,
      service: "s3",
      sha256: NodeSha256,
    });
  }

  /** Sends one signed request; the body is never hashed (UNSIGNED-PAYLOAD). */
  async send(
    method: string,
    key: string | undefined,
    body?: Uint8Array<ArrayBuffer>,
  ): Promise<Response> {
    const path = `/${this.#t.bucket}${key === undefined ? "" : "/" + encodeKey(key)}`;
    const headers: Record<string, string> = {
      host: this.#url.host,
      "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
    };
    if (body) headers["content-length"] = String(body.byteLength);
    const signed = await this.#signer.sign({
      method,
      protocol: this.#url.protocol,
      hostname: this.#url.hostname,
      ...(this.#url.port ? { port: Number(this.#url.port) } : {}),
      path,
      query: {},
      headers,
    });
    const h = new Headers();
    for (const [k, v] of Object.entries(signed.headers)) {
      if (k.toLowerCase() !== "host" && k.toLowerCase() !== "content-length") h.set(k, v);
    }
    return await fetch(`${this.#url.origin}${path}`, {
      method,
      headers: h,
      ...(body ? { body } : {}),
    });
  }

  /** Creates the bucket (an existing one is fine). */
  async createBucket(): Promise<void> {
    const res = await this.send("PUT", undefined);
    await res.body?.cancel();
    if (!res.ok && res.status !== 409) throw new Error(`Cannot create bucket: HTTP ${res.status}`);
  }

  /** HEAD of one key: true when it exists. */
  async exists(key: string): Promise<boolean> {
    const res = await this.send("HEAD", key);
    await res.body?.cancel();
    return res.ok;
  }
}

/** Result of {@linkcode putAll}. */
export interface CeilingResult {
  files: number;
  bytes: number;
  ms: number;
  failed: number;
}

/**
 * PUTs every file (read from disk at upload time, as a sync tool must) with
 * `concurrency` requests in flight; returns the wall time.
 */
export async function putAll(
  target: S3Target,
  files: readonly { path: string; key: string }[],
  concurrency: number,
): Promise<CeilingResult> {
  const s3 = new MiniS3(target);
  await s3.createBucket();
  let next = 0;
  let bytes = 0;
  let failed = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < files.length) {
      const f = files[next++]!;
      const body = new Uint8Array(fs.readFileSync(f.path));
      const res = await s3.send("PUT", f.key, body);
      await res.body?.cancel();
      if (res.ok) bytes += body.byteLength;
      else failed++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { files: files.length, bytes, ms: performance.now() - t0, failed };
}

function walk(root: string, dir = root, out: { path: string; key: string }[] = []) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory()) walk(root, p, out);
    else if (e.isFile()) out.push({ path: p, key: p.slice(root.length + 1) });
  }
  return out;
}

if (import.meta.main) {
  // deno run -A scripts/bench/ceiling.ts ROOT BUCKET CONCURRENCY
  // (S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION from the environment)
  const [root, bucket, concurrency] = Deno.args;
  if (!root || !bucket) throw new Error("usage: ceiling.ts ROOT BUCKET [CONCURRENCY]");
  const env = (k: string) => {
    const v = Deno.env.get(k);
    if (!v) throw new Error(`${k} is not set`);
    return v;
  };
  const r = await putAll(
    {
      endpoint: env("S3_ENDPOINT"),
      accessKeyId: env("AWS_ACCESS_KEY_ID"),
      secretAccessKey: env("AWS_SECRET_ACCESS_KEY"),
      region: Deno.env.get("AWS_REGION") ?? "us-east-1",
      bucket,
    },
    walk(root.replace(/\/+$/, "")),
    Number(concurrency ?? "8"),
  );
  // deno-lint-ignore no-console
  console.log(JSON.stringify(r));
  Deno.exit(r.failed > 0 ? 1 : 0);
}
