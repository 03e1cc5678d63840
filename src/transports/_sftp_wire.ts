/**
 * Socket-level help for the `sftp` transport: ssh2 writes every SSH packet
 * (one per SFTP request) to the socket on its own, and each write through
 * Deno's `node:net` costs about as much as encrypting the packet.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import process from "node:process";
import type * as net from "node:net";

/**
 * Coalesces the byte chunks written to `sock` within one tick into one
 * write: ssh2 writes each SSH packet as 3–4 chunks (length, ciphertext, tag),
 * and every chunk passed through the stream machinery costs about as much as
 * copying a few kilobytes. The chunks of a tick are joined and written once
 * on the next tick, so a burst of requests (an upload's writes, close and
 * stat) leaves in one socket write; a lone request waits only for the end
 * of the current tick. Anything else (a string, a callback, `end()`) first
 * writes what is pending, so the order of the bytes never changes. The
 * chunks are not copied before the flush: callers must not reuse them
 * (ssh2 allocates every packet afresh). Install it once the socket is
 * connected: `connect()` replaces `write`.
 */
export function coalesceWrites(sock: net.Socket): void {
  const write = sock.write.bind(sock) as (...args: unknown[]) => boolean;
  const end = sock.end.bind(sock) as (...args: unknown[]) => net.Socket;
  let pending: Uint8Array[] = [];
  let pendingLen = 0;
  const flush = () => {
    if (pending.length === 0) return;
    const parts = pending;
    const len = pendingLen;
    pending = [];
    pendingLen = 0;
    if (!sock.destroyed) write(parts.length === 1 ? parts[0]! : Buffer.concat(parts, len));
  };
  sock.write = ((...args: unknown[]) => {
    const chunk = args[0];
    if (args.length === 1 && chunk instanceof Uint8Array && !sock.destroyed) {
      if (pending.length === 0) process.nextTick(flush);
      pending.push(chunk);
      pendingLen += chunk.length;
      // ssh2 ignores the answer; the socket's own buffer still applies backpressure.
      return sock.writableLength < sock.writableHighWaterMark;
    }
    flush();
    return write(...args);
  }) as typeof sock.write;
  sock.end = ((...args: unknown[]) => {
    flush();
    return end(...args);
  }) as typeof sock.end;
}

/** The part of ssh2's internal protocol object that sends channel messages. */
interface ChannelSender {
  channelData(chan: number, data: Buffer | string): void;
  channelEOF(chan: number): void;
  channelClose(chan: number): void;
}

/** The part of ssh2's SFTP session that names its channel and protocol. */
interface SftpInternals {
  _protocol?: ChannelSender;
  outgoing?: { id?: number; packetSize?: number };
}

/**
 * Packs the SFTP requests issued within one tick into as few SSH packets as
 * the peer's maximum packet size allows. ssh2 sends every SFTP request as its
 * own CHANNEL_DATA packet, and each packet costs an encryption and a MAC
 * (about as much as the request's other client work); SFTP is a byte stream
 * inside the channel, so request boundaries need not match packet
 * boundaries. Flow control is unchanged: ssh2 has already charged each
 * request to the channel window. The channel's EOF and close are sent after
 * the pending data, never before. Returns false (and changes nothing) when
 * the session does not expose what this needs (another ssh2 version).
 */
export function coalesceChannelData(sftp: unknown): boolean {
  const s = sftp as SftpInternals;
  const proto = s._protocol;
  const out = s.outgoing;
  if (
    !proto || !out || typeof out.id !== "number" || typeof out.packetSize !== "number" ||
    typeof proto.channelData !== "function" || typeof proto.channelEOF !== "function" ||
    typeof proto.channelClose !== "function"
  ) {
    return false;
  }
  const data = proto.channelData.bind(proto);
  const eof = proto.channelEOF.bind(proto);
  const close = proto.channelClose.bind(proto);
  const id = out.id;
  let pending: Buffer[] = [];
  let pendingLen = 0;
  let scheduled = false;
  const flush = () => {
    if (pending.length === 0) return;
    const parts = pending;
    const len = pendingLen;
    pending = [];
    pendingLen = 0;
    data(id, parts.length === 1 ? parts[0]! : Buffer.concat(parts, len));
  };
  const onTick = () => {
    scheduled = false;
    try {
      flush();
    } catch {
      // The connection broke meanwhile: its requests fail through its close.
    }
  };
  proto.channelData = (chan, payload) => {
    if (chan !== id || typeof payload === "string") {
      if (chan === id) flush();
      data(chan, payload);
      return;
    }
    const max = out.packetSize ?? 0;
    if (pendingLen > 0 && pendingLen + payload.length > max) flush();
    pending.push(payload);
    pendingLen += payload.length;
    if (!scheduled) {
      scheduled = true;
      process.nextTick(onTick);
    }
  };
  proto.channelEOF = (chan) => {
    if (chan === id) flush();
    eof(chan);
  };
  proto.channelClose = (chan) => {
    if (chan === id) flush();
    close(chan);
  };
  return true;
}
