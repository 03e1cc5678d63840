/**
 * SFTP requests with a timeout, and the upload of a file's bytes: small
 * files in one burst of writes, larger ones streamed with a bounded number
 * of writes in flight.
 *
 * @module
 */
// @ts-types="@types/ssh2"
import type ssh2 from "ssh2";
import { Buffer } from "node:buffer";
import type * as fs from "node:fs/promises";
import * as path from "node:path";
import type { Conn } from "./connect.ts";
import { at, ConnectionError, PERMISSION_DENIED } from "./errors.ts";

/** Bytes per SFTP write request. */
const CHUNK = 64 * 1024;
/** Write requests in flight per upload (memory bound: CHUNK × this). */
const IN_FLIGHT = 16;
/** Files up to this size are read at once and sent in one burst of requests. */
export const BURST = CHUNK * IN_FLIGHT;

/**
 * Runs `fn` once no other large upload (more than {@linkcode SMALL_UPLOAD}
 * bytes) runs on `conn`'s session, in the order asked. The lanes of a
 * session share its channel's window and its link: with one large upload
 * per session, the bytes queued on a link stay what they were with one
 * upload per session (each request's timeout counts from when it is queued),
 * while small files pass beside it.
 */
export async function largeTurn<T>(conn: Conn, fn: () => Promise<T>): Promise<T> {
  const session = conn.session;
  const before = session.largeTurn;
  let done!: () => void;
  const mine = new Promise<void>((resolve) => done = resolve);
  session.largeTurn = mine;
  try {
    await before;
    return await fn();
  } finally {
    done();
    if (session.largeTurn === mine) session.largeTurn = undefined;
  }
}

/** Uploads up to this size never wait for a turn (see {@linkcode largeTurn}). */
export const SMALL_UPLOAD = 64 * 1024;

/**
 * One SFTP request with a timeout (the connection's deadlines, `deadlines.ts`);
 * a timeout kills the connection.
 */
export function request<R>(
  conn: Conn,
  fn: (cb: (err: Error | undefined | null, res?: R) => void) => void,
): Promise<R> {
  return new Promise<R>((resolve, reject) => {
    if (!conn.alive) {
      reject(new ConnectionError("connection closed"));
      return;
    }
    const deadlines = conn.link.deadlines;
    let settled = false;
    const id = deadlines.add((err) => {
      settled = true;
      reject(err);
    });
    try {
      fn((err, res) => {
        if (settled) return;
        settled = true;
        deadlines.done(id);
        if (err) reject(err);
        else resolve(res as R);
      });
    } catch (err) {
      settled = true;
      deadlines.done(id);
      reject(err);
    }
  });
}

/**
 * Sends a small file's bytes into a new remote file in one burst: every
 * write, the close and a stat of the closed file go out together and are
 * answered in order (3 round trips per file with the open and the rename,
 * instead of 5). Returns the size the server reports.
 */
export async function uploadBytes(
  conn: Conn,
  data: Uint8Array,
  remote: string,
): Promise<number> {
  const handle = await at(
    request<Buffer>(conn, (cb) => conn.sftp.open(remote, "w", cb)),
    (code) =>
      code === PERMISSION_DENIED
        ? `cannot create "${remote}": "${path.posix.dirname(remote)}" is not writable`
        : `cannot create "${remote}"`,
  );
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const writes: Promise<void>[] = [];
  for (let at = 0; at < buf.length; at += CHUNK) {
    const len = Math.min(CHUNK, buf.length - at);
    writes.push(
      request<void>(conn, (cb) => conn.sftp.write(handle, buf, at, len, at, cb)),
    );
  }
  const closed = request<void>(conn, (cb) => conn.sftp.close(handle, cb));
  const stat = request<ssh2.Stats>(conn, (cb) => conn.sftp.stat(remote, cb));
  const [w, c, st] = await Promise.all([
    Promise.allSettled(writes),
    closed.then(() => undefined, (err: unknown) => err ?? new Error("close failed")),
    stat.then((s) => ({ size: s.size }), (err: unknown) => ({ err })),
  ]);
  const failed = w.find((r) => r.status === "rejected");
  if (failed) throw failed.reason;
  if (c !== undefined) throw c;
  if ("err" in st) throw st.err;
  return st.size;
}

/** Streams a local file into a remote one; returns the bytes sent. */
export async function uploadStream(
  conn: Conn,
  fh: fs.FileHandle,
  remote: string,
  signal: AbortSignal,
): Promise<number> {
  {
    const handle = await at(
      request<Buffer>(conn, (cb) => conn.sftp.open(remote, "w", cb)),
      (code) =>
        code === PERMISSION_DENIED
          ? `cannot create "${remote}": "${path.posix.dirname(remote)}" is not writable`
          : `cannot create "${remote}"`,
    );
    let closed = false;
    try {
      let pos = 0;
      let eof = false;
      let failure: unknown;
      const inflight = new Set<Promise<void>>();
      while (!eof || inflight.size > 0) {
        while (!eof && failure === undefined && inflight.size < IN_FLIGHT) {
          if (signal.aborted) {
            failure = signal.reason;
            break;
          }
          const buf = Buffer.allocUnsafe(CHUNK);
          const { bytesRead } = await fh.read(buf, 0, CHUNK, pos);
          if (bytesRead === 0) {
            eof = true;
            break;
          }
          const at = pos;
          pos += bytesRead;
          const p: Promise<void> = request<void>(
            conn,
            (cb) => conn.sftp.write(handle, buf, 0, bytesRead, at, cb),
          ).then(
            () => {
              inflight.delete(p);
            },
            (err) => {
              failure ??= err;
              inflight.delete(p);
            },
          );
          inflight.add(p);
        }
        if (inflight.size > 0) await Promise.race(inflight);
        if (failure !== undefined && inflight.size === 0) throw failure;
      }
      await request(conn, (cb) => conn.sftp.close(handle, cb));
      closed = true;
      return pos;
    } finally {
      if (!closed && conn.alive) conn.sftp.close(handle, () => {});
    }
  }
}
