/**
 * Cloud Files settings, the request description, and the streams an upload
 * reads: a file part with an idle watch.
 *
 * @module
 */
import type * as fsp from "node:fs/promises";
import { openRegular } from "../../util/regular_file.ts";
import { type OptionValues, parseSettings } from "../../options.ts";
import { joinRemote } from "../paths.ts";
import { MiB, parseSize, settingText as text } from "../_common.ts";
import {
  RACKSPACE_AUTH_V1,
  RACKSPACE_AUTH_V2,
  type SwiftAuthOptions,
  type SwiftSession,
} from "../_swift_auth.ts";
import { CLOUDFILES_OPTIONS, MAX_OBJECT } from "../cloudfiles.ts";

/** Swift's default limit on segments per manifest. */
export const MAX_SEGMENTS = 1000;

/** The Cloud Files settings of one server, parsed once. */
export interface Settings {
  container: string;
  segContainer: string;
  prefix: string;
  url?: string;
  cdn: boolean;
  cdnSsl: boolean;
  cacheControl?: string;
  threshold: number;
  segmentSize: number;
  segmentConcurrency: number;
  createContainer: boolean;
  auth: Omit<SwiftAuthOptions, "server" | "timeoutMs" | "client">;
}

/**
 * Reads validated option values (see `CLOUDFILES_OPTIONS`) once into the
 * settings the client uses: sizes in bytes, booleans, the login.
 */
export function parse(values: OptionValues): Settings {
  const v = parseSettings(CLOUDFILES_OPTIONS, values);
  const version = v.auth_version as "1" | "2" | "3";
  const container = v.container.trim();
  const auth: Settings["auth"] = {
    version,
    authUrl: text(v.auth_url) ?? (version === "1" ? RACKSPACE_AUTH_V1 : RACKSPACE_AUTH_V2),
    username: v.username.trim(),
    endpointType: v.endpoint_type as "public" | "internal" | "admin",
  };
  for (
    const [opt, key] of [
      ["api_key", "apiKey"],
      ["password", "password"],
      ["tenant_id", "tenantId"],
      ["tenant_name", "tenantName"],
      ["user_domain", "userDomain"],
      ["project_domain", "projectDomain"],
      ["region", "region"],
    ] as const
  ) {
    const val = text(v[opt]);
    if (val) auth[key] = val;
  }
  const s: Settings = {
    container,
    segContainer: text(v.segment_container) ?? `${container}_segments`,
    prefix: joinRemote(text(v.path) ?? ""),
    cdn: v.cdn,
    cdnSsl: v.cdn_ssl,
    threshold: Math.min(MAX_OBJECT, parseSize(v.segment_threshold) ?? 1024 * MiB),
    segmentSize: parseSize(v.segment_size) ?? 128 * MiB,
    segmentConcurrency: v.segment_concurrency,
    createContainer: v.create_container,
    auth,
  };
  const url = text(v.url);
  if (url) s.url = url;
  const cc = text(v.cache_control);
  if (cc) s.cacheControl = cc;
  return s;
}

/** Aborts when no bytes moved for `ms` (a stalled upload), not when a big one is merely slow. */
export class IdleWatch {
  readonly #ctl = new AbortController();
  readonly #ms: number;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(ms: number) {
    this.#ms = ms;
    this.touch();
  }

  get signal(): AbortSignal {
    return this.#ctl.signal;
  }

  touch(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(
      () => this.#ctl.abort(new DOMException("Idle timeout", "TimeoutError")),
      this.#ms,
    );
  }

  stop(): void {
    clearTimeout(this.#timer);
  }

  wrap(body: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
    return body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform: (chunk, c) => {
          this.touch();
          c.enqueue(chunk);
        },
      }),
    );
  }
}

/** Set by a file stream when the file turned out shorter than announced. */
export interface StreamState {
  shrank: boolean;
}

/**
 * A byte range of a local file as a stream, opened on first read and closed
 * at the end or on cancel; `onData` sees every chunk (for hashing).
 */
export function fileStream(
  localPath: string,
  start: number,
  length: number,
  state: StreamState,
  onData?: (chunk: Uint8Array) => void,
): ReadableStream<Uint8Array> {
  let fh: fsp.FileHandle | undefined;
  let pos = start;
  let left = length;
  const close = async () => {
    const h = fh;
    fh = undefined;
    left = 0;
    await h?.close().catch(() => {});
  };
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      if (left <= 0) {
        await close();
        c.close();
        return;
      }
      fh ??= await openRegular(localPath);
      const buf = new Uint8Array(Math.min(256 * 1024, left));
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) {
        await close();
        state.shrank = true;
        c.error(new Error("The local file shrank while uploading"));
        return;
      }
      const chunk = buf.subarray(0, bytesRead);
      pos += bytesRead;
      left -= bytesRead;
      onData?.(chunk);
      c.enqueue(chunk);
    },
    async cancel() {
      await close();
    },
  });
}

export interface Req {
  method: string;
  /** Container (the main one when absent) and object name; neither means the account. */
  container?: string;
  name?: string;
  query?: string;
  /** A full URL instead (CDN management). */
  url?: (session: SwiftSession) => string;
  headers?: Record<string, string>;
  /** Called for every attempt (a 401 makes a second one). */
  body?: () => BodyInit | null;
  signal: AbortSignal;
  /** Idle timeout (uploads of unknown duration) instead of a whole-call timeout. */
  idle?: boolean;
  /** State of a file stream body, to tell a shrunken file from a network error. */
  stream?: StreamState;
  /** For messages. */
  action: string;
  path: string;
}
