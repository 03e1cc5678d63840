import * as net from "node:net";
import { Buffer } from "node:buffer";
import { coalesceWrites } from "../../src/transports/_sftp_wire.ts";
import { assertEquals } from "../_assert.ts";

Deno.test("coalesceWrites sends the writes of one tick in one writev, in order", async () => {
  const got: Buffer[] = [];
  let ended!: () => void;
  const done = new Promise<void>((r) => ended = r);
  const server = net.createServer((s) => {
    s.on("data", (d: Buffer) => got.push(d));
    s.on("end", () => ended());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const sock = new net.Socket();
  try {
    await new Promise<void>((r) =>
      sock.connect({ host: "127.0.0.1", port: (server.address() as net.AddressInfo).port }, r)
    );
    sock.setNoDelay(true);
    coalesceWrites(sock);
    let writev = 0;
    const original = (sock as unknown as { _writev: (...a: unknown[]) => void })._writev;
    (sock as unknown as { _writev: (...a: unknown[]) => void })._writev = function (...a) {
      writev++;
      return original.apply(this, a);
    };
    for (let burst = 0; burst < 3; burst++) {
      for (const c of "abc") sock.write(Buffer.from(`${burst}${c}`));
      assertEquals(sock.writableCorked, 1, "corked during the tick");
      await new Promise((r) => setTimeout(r, 10));
      assertEquals(sock.writableCorked, 0, "uncorked after the tick");
    }
    assertEquals(writev, 3);
    sock.end();
    await done;
    assertEquals(Buffer.concat(got).toString(), "0a0b0c1a1b1c2a2b2c");
  } finally {
    sock.destroy();
    await new Promise((r) => server.close(r));
  }
});
