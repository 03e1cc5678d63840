/**
 * A TCP server that accepts connections and never answers: a destination
 * that hangs rather than refuses (the worst case for timeouts and memory).
 *
 * @module
 */

/** Starts the black hole on a free loopback port. */
export function blackHoleServer(): { port: number; accepted(): number; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  let accepted = 0;
  (async () => {
    try {
      for await (const c of listener) {
        accepted++;
        conns.add(c);
        (async () => {
          const buf = new Uint8Array(65536);
          try {
            while ((await c.read(buf)) !== null) {
              // Discard; never answer.
            }
          } catch {
            // Closed.
          }
          conns.delete(c);
        })();
      }
    } catch {
      // Listener closed.
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    accepted: () => accepted,
    close() {
      try {
        listener.close();
      } catch {
        // Closed.
      }
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // Closed.
        }
      }
    },
  };
}
