/**
 * The opt-in HTTP listener (`sync --http HOST:PORT` or the `http` setting):
 * `/metrics` (Prometheus), `/healthz`, the status page at `/`, and the JSON
 * API (`GET /api/status`, `POST /api/retry`). It binds to 127.0.0.1 unless
 * told otherwise.
 *
 * Protection: a POST must carry the `X-Fileconveyor-Request` header and a
 * JSON content type (a cross-site form cannot send either without a CORS
 * preflight, which is never granted), and its `Origin`, when present, must
 * be this listener. On a loopback address the `Host` header must name
 * the loopback too (DNS rebinding). Pages are served with a strict
 * Content-Security-Policy.
 *
 * @module
 */
import { ClassifiedError, errorMessage } from "../errors.ts";
import { type Logger, logger } from "../log.ts";
import type { Daemon } from "../pipeline/daemon.ts";
import { healthOf } from "./health.ts";
import type { Metrics } from "./metrics.ts";
import { liveStatus, retry, type RetryRequest } from "./status_api.ts";
import { statusPage } from "./status_page.ts";

/** The header a state-changing request must carry. */
export const CSRF_HEADER = "X-Fileconveyor-Request";

/** A parsed listen address. */
export interface ListenAddress {
  hostname: string;
  port: number;
}

/**
 * Parses `HOST:PORT`, `:PORT`, `PORT` or `[V6]:PORT`; the host defaults to
 * 127.0.0.1.
 *
 * @example
 * ```ts
 * import { parseListen } from "./http.ts";
 * const a = parseListen(":9100");
 * if (a.hostname !== "127.0.0.1" || a.port !== 9100) throw new Error();
 * ```
 */
export function parseListen(text: string): ListenAddress {
  const t = text.trim();
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]*)):(\d{1,5})$/.exec(t) ?? /^()()(\d{1,5})$/.exec(t);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new ClassifiedError(
      `Cannot parse the listen address "${text}": expected HOST:PORT, e.g. 127.0.0.1:9100`,
      "fatal",
    );
  }
  return { hostname: m[1] || m[2] || "127.0.0.1", port };
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}

const SECURITY_HEADERS = {
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "X-Frame-Options": "DENY",
  "Cache-Control": "no-store",
};

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
  "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { ...SECURITY_HEADERS, "Content-Type": "application/json; charset=utf-8" },
  });
}

function text(body: string, type: string, status = 200, extra: Record<string, string> = {}) {
  return new Response(body, {
    status,
    headers: { ...SECURITY_HEADERS, "Content-Type": type, ...extra },
  });
}

/** Options for {@linkcode OpsServer}. */
export interface OpsServerOptions {
  daemon: Daemon;
  metrics: Metrics;
  /** Whether the daemon watches its sources (health expects watchers). */
  watching: boolean;
  log?: Logger;
}

/** The HTTP listener. */
export class OpsServer {
  readonly #o: OpsServerOptions;
  readonly #log: Logger;
  readonly #started = Date.now();
  #server: Deno.HttpServer<Deno.NetAddr> | undefined;
  #addr: ListenAddress | undefined;
  #allowedHosts = new Set<string>();

  constructor(options: OpsServerOptions) {
    this.#o = options;
    this.#log = options.log ?? logger("http");
  }

  /** The bound address (the real port when 0 was asked for). */
  get address(): ListenAddress | undefined {
    return this.#addr;
  }

  /**
   * Starts listening.
   *
   * @throws {ClassifiedError} when the address is invalid or taken.
   */
  listen(address: string): ListenAddress {
    const want = parseListen(address);
    let server: Deno.HttpServer<Deno.NetAddr>;
    try {
      server = this.#serve(want);
    } catch (e) {
      throw new ClassifiedError(
        `Cannot listen on "${address}": ${errorMessage(e)}`,
        "fatal",
        { cause: e },
      );
    }
    this.#server = server;
    const bound = server.addr;
    this.#addr = { hostname: bound.hostname, port: bound.port };
    const host = bound.hostname.includes(":") ? `[${bound.hostname}]` : bound.hostname;
    this.#allowedHosts = new Set([
      `${host}:${bound.port}`,
      `localhost:${bound.port}`,
      `127.0.0.1:${bound.port}`,
      `[::1]:${bound.port}`,
    ]);
    this.#log.info(
      `Status page, /metrics and /healthz on http://${host}:${bound.port}/${
        isLoopback(bound.hostname)
          ? ""
          : " (not loopback: anyone who can reach it can read the status and retry files)"
      }`,
    );
    return this.#addr;
  }

  #serve(want: ListenAddress): Deno.HttpServer<Deno.NetAddr> {
    return Deno.serve({
      hostname: want.hostname,
      port: want.port,
      onListen: () => {},
      onError: (e) => {
        this.#log.error(`Request failed: ${errorMessage(e)}`);
        return json({ error: "internal error" }, 500);
      },
    }, (req, info) => this.#handle(req, info));
  }

  /** Stops listening (running requests finish). */
  async close(): Promise<void> {
    const s = this.#server;
    this.#server = undefined;
    if (s) await s.shutdown().catch(() => {});
  }

  async #handle(req: Request, _info: Deno.ServeHandlerInfo): Promise<Response> {
    const t0 = performance.now();
    const res = await this.#route(req);
    if (this.#log.debugEnabled) {
      this.#log.debug(
        `${req.method} ${new URL(req.url).pathname} ${res.status} (${
          (performance.now() - t0).toFixed(1)
        } ms)`,
      );
    }
    return res;
  }

  async #route(req: Request): Promise<Response> {
    const url = new URL(req.url);
    if (this.#addr && isLoopback(this.#addr.hostname)) {
      const host = req.headers.get("host") ?? "";
      if (!this.#allowedHosts.has(host.toLowerCase())) {
        return json({ error: `Host "${host}" is not this listener` }, 421);
      }
    }
    try {
      if (req.method === "GET" || req.method === "HEAD") return this.#get(url.pathname);
      if (req.method === "POST" && url.pathname === "/api/retry") return await this.#retry(req);
      return json({ error: `Cannot ${req.method} ${url.pathname}` }, 405);
    } catch (e) {
      // The store closes while the daemon shuts down.
      return json({ error: `Unavailable: ${errorMessage(e)}` }, 503);
    }
  }

  #get(path: string): Response {
    const d = this.#o.daemon;
    switch (path) {
      case "/":
        return text(statusPage.html, "text/html; charset=utf-8", 200, {
          "Content-Security-Policy": CSP,
        });
      case "/app.js":
        return text(statusPage.js, "text/javascript; charset=utf-8");
      case "/app.css":
        return text(statusPage.css, "text/css; charset=utf-8");
      case "/favicon.ico":
        return new Response(null, { status: 204 });
      case "/metrics":
        return text(this.#o.metrics.render(), "text/plain; version=0.0.4; charset=utf-8");
      case "/healthz": {
        const h = healthOf(d, this.#o.watching);
        return json({
          status: h.ok ? "ok" : "unhealthy",
          problems: h.problems,
          watchers: h.watchers,
          failingServers: h.failing.map((f) => f.server),
        }, h.ok ? 200 : 503);
      }
      case "/api/status":
        return json(liveStatus(d, { watching: this.#o.watching, startedAt: this.#started }));
      default:
        return json({ error: `No such page: ${path}` }, 404);
    }
  }

  async #retry(req: Request): Promise<Response> {
    if (req.headers.get(CSRF_HEADER) !== "1") {
      return json({ error: `Missing header ${CSRF_HEADER}: 1` }, 403);
    }
    const origin = req.headers.get("origin");
    if (origin) {
      let host = "";
      try {
        host = new URL(origin).host;
      } catch {
        // Not a URL: refused below.
      }
      if (host !== (req.headers.get("host") ?? "").toLowerCase()) {
        return json({ error: `Cross-origin request from "${origin}" refused` }, 403);
      }
    }
    if (!(req.headers.get("content-type") ?? "").startsWith("application/json")) {
      return json({ error: "Expected a JSON body" }, 415);
    }
    let body: RetryRequest;
    try {
      const raw = await req.text();
      body = raw.trim() ? JSON.parse(raw) : {};
    } catch {
      return json({ error: "Cannot parse the JSON body" }, 400);
    }
    if (
      typeof body !== "object" || body === null ||
      (body.id !== undefined && !Number.isInteger(body.id)) ||
      (body.server !== undefined && typeof body.server !== "string")
    ) {
      return json({ error: 'Expected {"id": number} or {"server": string} or {}' }, 400);
    }
    const n = retry(this.#o.daemon, body);
    this.#log.info(
      `Re-queued ${n} file(s) on request${body.id !== undefined ? ` (job ${body.id})` : ""}${
        body.server ? ` for server "${body.server}"` : ""
      }`,
    );
    return json({ requeued: n });
  }
}
