/**
 * TLS material for tests: a private CA and a server certificate it signed
 * for 127.0.0.1 and localhost (rustls refuses a self-signed certificate
 * used as its own CA), and a TLS-terminating proxy in front of a plain
 * server.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { sh } from "./_util.ts";

/** A private CA and a certificate it signed for 127.0.0.1 / localhost. */
export async function privateCa(
  dir: string,
): Promise<{ cert: string; key: string; caFile: string }> {
  const f = (n: string) => path.join(dir, n);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await sh("openssl", [
    "req",
    "-x509",
    ...ec,
    "-days",
    "2",
    "-subj",
    "/CN=fileconveyor test CA",
    "-keyout",
    f("ca.key"),
    "-out",
    f("ca.pem"),
  ]);
  await sh("openssl", [
    "req",
    ...ec,
    "-subj",
    "/CN=localhost",
    "-keyout",
    f("key.pem"),
    "-out",
    f("req.csr"),
  ]);
  fs.writeFileSync(f("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  await sh("openssl", [
    "x509",
    "-req",
    "-in",
    f("req.csr"),
    "-CA",
    f("ca.pem"),
    "-CAkey",
    f("ca.key"),
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    f("ext.cnf"),
    "-out",
    f("cert.pem"),
  ]);
  return {
    cert: fs.readFileSync(f("cert.pem"), "utf8"),
    key: fs.readFileSync(f("key.pem"), "utf8"),
    caFile: f("ca.pem"),
  };
}

/** Accepts TLS with `cert`/`key` on a free port and forwards the plain bytes to `targetPort`. */
export function tlsProxy(
  targetPort: number,
  cert: string,
  key: string,
): { port: number; close(): void } {
  const listener = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert, key });
  const conns = new Set<Deno.Conn>();
  (async () => {
    try {
      for await (const c of listener) {
        (async () => {
          let up: Deno.Conn | undefined;
          try {
            up = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
            conns.add(c);
            conns.add(up);
            await Promise.allSettled([
              c.readable.pipeTo(up.writable),
              up.readable.pipeTo(c.writable),
            ]);
          } catch {
            // Handshake refused by the client (the point of some tests) or closed.
          } finally {
            for (const x of [c, up]) {
              if (!x) continue;
              conns.delete(x);
              try {
                x.close();
              } catch {
                // Closed.
              }
            }
          }
        })();
      }
    } catch {
      // Listener closed.
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
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
