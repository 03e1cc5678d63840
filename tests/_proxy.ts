/**
 * A loopback TCP proxy in front of a real server, for faults that other tests
 * sharing the server do not see: cut every open connection (the server
 * "crashed"), take the server away and bring it back on the same port, or
 * turn it into a black hole that accepts and never answers. It also counts
 * connections, to check login storms and connection limits.
 *
 * @example
 * ```ts
 * const proxy = TcpProxy.start(serverPort);
 * try {
 *   // point the transport at proxy.port, then:
 *   proxy.down(); // "connection refused" from now on
 *   proxy.up(); // listening again
 * } finally {
 *   proxy.close();
 * }
 * ```
 *
 * @module
 */

/** The proxy; see the module documentation. */
export class TcpProxy {
  readonly port: number;
  readonly #target: { hostname: string; port: number };
  #listener: Deno.Listener | undefined;
  readonly #conns = new Set<Deno.Conn>();
  #open = 0;
  #maxOpen = 0;
  /** Connections accepted so far. */
  accepted = 0;
  /**
   * When true, new connections are accepted and held without ever being
   * forwarded or answered (a destination that hangs rather than refuses).
   */
  blackhole = false;

  private constructor(port: number, target: { hostname: string; port: number }) {
    this.port = port;
    this.#target = target;
  }

  /** Starts a proxy on a free loopback port. */
  static start(targetPort: number, targetHost = "127.0.0.1"): TcpProxy {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const p = new TcpProxy((l.addr as Deno.NetAddr).port, {
      hostname: targetHost,
      port: targetPort,
    });
    p.#serve(l);
    return p;
  }

  /** Whether the proxy is listening. */
  get isUp(): boolean {
    return this.#listener !== undefined;
  }

  /** The most client connections open at the same time so far. */
  get maxOpen(): number {
    return this.#maxOpen;
  }

  #serve(l: Deno.Listener) {
    this.#listener = l;
    (async () => {
      try {
        for await (const c of l) {
          this.accepted++;
          if (this.blackhole) this.#conns.add(c);
          else void this.#pipe(c);
        }
      } catch {
        // Listener closed.
      }
    })();
  }

  async #pipe(client: Deno.Conn) {
    this.#open++;
    this.#maxOpen = Math.max(this.#maxOpen, this.#open);
    this.#conns.add(client);
    let upstream: Deno.Conn | undefined;
    try {
      upstream = await Deno.connect(this.#target);
      this.#conns.add(upstream);
      await Promise.allSettled([
        client.readable.pipeTo(upstream.writable, { preventClose: false }),
        upstream.readable.pipeTo(client.writable, { preventClose: false }),
      ]);
    } catch {
      // Upstream refused: the client sees its connection closed.
    } finally {
      this.#open--;
      for (const c of [client, upstream]) {
        if (!c) continue;
        this.#conns.delete(c);
        closeQuietly(c);
      }
    }
  }

  /** Drops every open connection (the server "crashed") and keeps listening. */
  cut(): void {
    for (const c of this.#conns) closeQuietly(c);
    this.#conns.clear();
  }

  /** Takes the server away: refuses new connections and cuts open ones. */
  down(): void {
    if (this.#listener) closeQuietly(this.#listener);
    this.#listener = undefined;
    this.cut();
  }

  /** Brings the server back on the same port. */
  up(): void {
    if (this.#listener) return;
    this.#serve(Deno.listen({ hostname: "127.0.0.1", port: this.port }));
  }

  /** Stops the proxy for good. */
  close(): void {
    this.down();
  }
}

function closeQuietly(c: { close(): void }): void {
  try {
    c.close();
  } catch {
    // Already closed.
  }
}
