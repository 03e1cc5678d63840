import * as net from "node:net";
import { Buffer } from "node:buffer";
// @ts-types="@types/ssh2"
import ssh2 from "ssh2";
import { coalesceChannelData, coalesceWrites } from "../../src/transports/_sftp_wire.ts";
import { sha256Fingerprint } from "../../src/transports/sftp.ts";
import { startServer } from "../_servers.ts";
import { assert, assertEquals } from "../_assert.ts";

Deno.test("coalesceWrites joins the chunks of one tick into one socket write, in order", async () => {
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
    // Every write that reaches the socket's stream machinery, and its number of chunks.
    const writes: string[] = [];
    const chunks: number[] = [];
    const inner = sock as unknown as {
      _write: (chunk: Buffer, ...a: unknown[]) => void;
      _writev: (chunks: { chunk: Buffer }[], ...a: unknown[]) => void;
    };
    const write1 = inner._write;
    const writev = inner._writev;
    inner._write = function (chunk, ...a) {
      writes.push(Buffer.from(chunk).toString());
      chunks.push(1);
      return write1.call(this, chunk, ...a);
    };
    inner._writev = function (list, ...a) {
      writes.push(list.map((c) => Buffer.from(c.chunk).toString()).join(""));
      chunks.push(list.length);
      return writev.call(this, list, ...a);
    };
    for (let burst = 0; burst < 3; burst++) {
      for (const c of "abc") sock.write(Buffer.from(`${burst}${c}`));
      assertEquals(writes.length, burst, "held until the end of the tick");
      await new Promise((r) => setTimeout(r, 10));
    }
    assertEquals(writes, ["0a0b0c", "1a1b1c", "2a2b2c"]);
    assertEquals(chunks, [1, 1, 1], "one chunk per tick, not one per write");
    // A write the wrapper does not hold (a string) sends what is pending first.
    sock.write(Buffer.from("x"));
    sock.write("y");
    // end() too.
    sock.write(Buffer.from("z"));
    sock.end();
    await done;
    assertEquals(Buffer.concat(got).toString(), "0a0b0c1a1b1c2a2b2cxyz");
  } finally {
    sock.destroy();
    await new Promise((r) => server.close(r));
  }
});

Deno.test("coalesceChannelData packs one tick's SFTP requests into packets of at most the peer's size", async () => {
  const info = await startServer("sftp");
  const client = new ssh2.Client();
  await new Promise<void>((resolve, reject) => {
    client.on("ready", resolve).on("error", reject).connect({
      host: info.host,
      port: info.port,
      username: info.username,
      privateKey: Buffer.from(Deno.readFileSync(info.keyPath)),
      hostVerifier: (key: Buffer) => sha256Fingerprint(key) === info.hostKeyFingerprint,
    });
  });
  try {
    const sftp = await new Promise<ssh2.SFTPWrapper>((resolve, reject) =>
      client.sftp((err, s) => err ? reject(err) : resolve(s))
    );
    const internals = sftp as unknown as {
      _protocol: { channelData(chan: number, data: Buffer): void };
      outgoing: { packetSize: number };
    };
    const sent: number[] = [];
    const original = internals._protocol.channelData.bind(internals._protocol);
    internals._protocol.channelData = (chan, data) => {
      sent.push(data.length);
      original(chan, data);
    };
    assert(coalesceChannelData(sftp), "installed on this ssh2 version");
    const packetSize = internals.outgoing.packetSize;

    // Ten requests issued in one tick: one packet, and every answer is right.
    const dir = `wire-${Date.now()}`;
    await new Promise<void>((r, j) => sftp.mkdir(dir, (e) => e ? j(e) : r()));
    sent.length = 0;
    const names = Array.from({ length: 10 }, (_, i) => `${dir}/f${i}`);
    const writes = names.map((name, i) =>
      new Promise<void>((r, j) => sftp.writeFile(name, "x".repeat(i + 1), (e) => e ? j(e) : r()))
    );
    await Promise.all(writes);
    const stats = await Promise.all(
      names.map((name) =>
        new Promise<number>((r, j) => sftp.stat(name, (e, st) => e ? j(e) : r(st.size)))
      ),
    );
    assertEquals(stats, names.map((_, i) => i + 1));
    assert(sent.length < names.length * 3, `fewer packets than requests (${sent.length})`);

    // Writes larger than a packet together: split at the peer's packet size, content intact.
    const big = Buffer.alloc(packetSize - 100, 7);
    sent.length = 0;
    await Promise.all(
      [0, 1, 2].map((i) =>
        new Promise<void>((r, j) => sftp.writeFile(`${dir}/big${i}`, big, (e) => e ? j(e) : r()))
      ),
    );
    assert(sent.every((n) => n <= packetSize), `packets within ${packetSize}: ${sent}`);
    for (const i of [0, 1, 2]) {
      assertEquals(Deno.readFileSync(`${info.root}/${dir}/big${i}`).length, big.length);
    }
  } finally {
    client.end();
  }
});
