/**
 * The small HTTP/1.1 client of the S3 lean path against a TCP server on
 * loopback that answers with exact bytes: the framings HTTP/1.1 allows
 * (Content-Length, chunked, to the end of the connection), interim answers,
 * keep-alive and a connection the server closed between requests.
 */
import { CutOffError, Http1Client, NoAnswerError } from "../../src/transports/_http1.ts";
import { assert, assertEquals, assertRejects } from "../_assert.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** What the server saw of one request. */
interface Seen {
  head: string;
  body: string;
  /** Which accepted connection (0, 1, …) carried it. */
  conn: number;
}

/**
 * A server that answers each request with the next of `answers` (a string,
 * or "CLOSE" to close the connection without answering). Requests are framed
 * by their content-length.
 */
function server(answers: string[]) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const seen: Seen[] = [];
  let next = 0;
  let conns = 0;
  const open = new Set<Deno.Conn>();
  const serve = async (c: Deno.Conn, id: number) => {
    let buf = new Uint8Array(0);
    const more = async () => {
      const chunk = new Uint8Array(65536);
      const n = await c.read(chunk);
      if (n === null) return false;
      const b = new Uint8Array(buf.length + n);
      b.set(buf);
      b.set(chunk.subarray(0, n), buf.length);
      buf = b;
      return true;
    };
    try {
      for (;;) {
        let end: number;
        while ((end = dec.decode(buf).indexOf("\r\n\r\n")) < 0) if (!(await more())) return;
        const head = dec.decode(buf.subarray(0, end));
        const len = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        while (buf.length < end + 4 + len) if (!(await more())) return;
        seen.push({ head, body: dec.decode(buf.subarray(end + 4, end + 4 + len)), conn: id });
        buf = buf.slice(end + 4 + len);
        const answer = answers[next++] ?? "CLOSE";
        if (answer === "CLOSE") return;
        await c.write(enc.encode(answer));
        if (/connection: close/i.test(answer) || !/content-length|chunked/i.test(answer)) return;
      }
    } catch {
      // The client went away.
    } finally {
      open.delete(c);
      try {
        c.close();
      } catch {
        // Closed already.
      }
    }
  };
  const loop = (async () => {
    for await (const c of listener) {
      open.add(c);
      void serve(c, conns++);
    }
  })().catch(() => {});
  const addr = listener.addr as Deno.NetAddr;
  return {
    origin: `http://127.0.0.1:${addr.port}`,
    seen,
    connections: () => conns,
    async close() {
      listener.close();
      for (const c of open) {
        try {
          c.close();
        } catch {
          // Closed already.
        }
      }
      await loop;
    },
  };
}

const signal = new AbortController().signal;

Deno.test("http1 sends head and body, reads a Content-Length answer and reuses the connection", async () => {
  const s = server([
    'HTTP/1.1 200 OK\r\nETag: "abc"\r\nX-Amz-Meta-A: 1\r\nX-Amz-Meta-A: 2\r\nContent-Length: 5\r\n\r\nhello',
    "HTTP/1.1 204 No Content\r\n\r\n",
  ]);
  const c = new Http1Client(s.origin, 2);
  try {
    const r = await c.request(
      "PUT",
      "/b/k%20x",
      { "content-md5": "xyz" },
      enc.encode("data!"),
      signal,
    );
    assertEquals(r.status, 200);
    assertEquals(dec.decode(r.body), "hello");
    assertEquals(r.headers.get("etag"), '"abc"');
    assertEquals(r.headers.get("X-AMZ-META-A"), "1, 2");
    const d = await c.request("DELETE", "/b/k", {}, undefined, signal);
    assertEquals(d.status, 204);
    assertEquals(s.seen.length, 2);
    assert(s.seen[0]!.head.startsWith("PUT /b/k%20x HTTP/1.1\r\n"));
    assert(/\r\nhost: 127\.0\.0\.1:\d+\r\n/.test(s.seen[0]!.head));
    assert(s.seen[0]!.head.includes("\r\ncontent-md5: xyz"));
    assert(s.seen[0]!.head.includes("\r\ncontent-length: 5"));
    assertEquals(s.seen[0]!.body, "data!");
    assertEquals(s.seen[1]!.conn, 0, "the second request used the kept connection");
  } finally {
    c.close();
    await s.close();
  }
});

Deno.test("http1 reads chunked bodies, skips interim answers and HEAD bodies", async () => {
  const s = server([
    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n" +
    "5\r\n<Erro\r\nb;ext=1\r\nr>NoSuch</E\r\n0\r\nTrailer: x\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",
  ]);
  const c = new Http1Client(s.origin, 2);
  try {
    const r = await c.request("GET", "/b?x=1", {}, undefined, signal);
    assertEquals(r.status, 404);
    assertEquals(dec.decode(r.body), "<Error>NoSuch</E");
    const h = await c.request("HEAD", "/b/k", {}, undefined, signal);
    assertEquals(h.status, 200);
    assertEquals(h.body.length, 0);
    assertEquals(h.headers.get("content-length"), "1234");
    assertEquals(s.connections(), 1);
  } finally {
    c.close();
    await s.close();
  }
});

Deno.test("http1 reads a body to the end of the connection and then opens a new one", async () => {
  const s = server([
    "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it",
    "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
  ]);
  const c = new Http1Client(s.origin, 2);
  try {
    assertEquals(
      dec.decode((await c.request("GET", "/", {}, undefined, signal)).body),
      "all of it",
    );
    assertEquals(dec.decode((await c.request("GET", "/", {}, undefined, signal)).body), "ok");
    assertEquals((await c.request("GET", "/", {}, undefined, signal)).status, 200);
    // close, then HTTP/1.0 without keep-alive: each answer ended its connection.
    assertEquals(s.seen.map((x) => x.conn), [0, 1, 2]);
  } finally {
    c.close();
    await s.close();
  }
});

Deno.test("http1 tells a connection closed before any answer from an answer cut off", async () => {
  const s = server([
    "CLOSE",
    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 10\r\n\r\nshort",
  ]);
  const c = new Http1Client(s.origin, 2);
  try {
    await assertRejects(() => c.request("PUT", "/k", {}, enc.encode("x"), signal), NoAnswerError);
    const err = await assertRejects(
      () => c.request("PUT", "/k", {}, enc.encode("x"), signal),
      CutOffError,
    );
    assertEquals((err as CutOffError).status, 200);
  } finally {
    c.close();
    await s.close();
  }
});

Deno.test("http1 gives up on abort and refuses header values with line breaks", async () => {
  const s = server(["CLOSE"]);
  const c = new Http1Client(s.origin, 2);
  try {
    await assertRejects(
      () => c.request("GET", "/", { "x-a": "1\r\nx-b: 2" }, undefined, signal),
      TypeError,
    );
    // A server that never answers: the signal ends the wait.
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const silent = new Http1Client(`http://127.0.0.1:${(l.addr as Deno.NetAddr).port}`, 1);
    const ac = new AbortController();
    const pending = silent.request("GET", "/", {}, undefined, ac.signal);
    const accepted = await l.accept();
    ac.abort(new Error("stop"));
    const err = await assertRejects(() => pending);
    assertEquals((err as Error).message, "stop");
    accepted.close();
    l.close();
    silent.close();
  } finally {
    c.close();
    await s.close();
  }
});
