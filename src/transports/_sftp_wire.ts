/**
 * Socket-level help for the `sftp` transport: ssh2 writes every SSH packet
 * (one per SFTP request) to the socket on its own, and each write through
 * Deno's `node:net` costs about as much as encrypting the packet.
 *
 * @module
 */
import process from "node:process";
import type * as net from "node:net";

/**
 * Coalesces everything written to `sock` within one tick into one write:
 * the first write of a tick corks the socket, and it is uncorked on the next
 * tick, so a burst of requests (an upload's writes, close and stat) leaves in
 * one `writev`. A lone request waits only for the end of the current tick.
 * Install it once the socket is connected: `connect()` replaces `write`.
 */
export function coalesceWrites(sock: net.Socket): void {
  const write = sock.write.bind(sock) as (...args: unknown[]) => boolean;
  let corked = false;
  const flush = () => {
    corked = false;
    if (!sock.destroyed) sock.uncork();
  };
  sock.write = ((...args: unknown[]) => {
    if (!corked && !sock.destroyed) {
      corked = true;
      sock.cork();
      process.nextTick(flush);
    }
    return write(...args);
  }) as typeof sock.write;
}
