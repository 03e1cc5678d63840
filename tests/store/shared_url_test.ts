import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseStoreUrl, redactStoreUrl } from "../../src/store/shared/url.ts";
import { assertEquals, assertThrows } from "../_assert.ts";

Deno.test("parseStoreUrl() reads the three kinds of store", () => {
  assertEquals(parseStoreUrl("sqlite:/var/lib/fc/shared.db"), {
    kind: "sqlite",
    file: "/var/lib/fc/shared.db",
  });
  assertEquals(parseStoreUrl("sqlite:///var/lib/fc/shared.db"), {
    kind: "sqlite",
    file: "/var/lib/fc/shared.db",
  });
  assertEquals(parseStoreUrl("postgresql://fc:p%40ss@db.example/site"), {
    kind: "postgres",
    host: "db.example",
    port: 5432,
    user: "fc",
    password: "p@ss",
    database: "site",
  });
  assertEquals(parseStoreUrl("mariadb://fc@[::1]:3307/site", "from-env"), {
    kind: "mysql",
    host: "::1",
    port: 3307,
    user: "fc",
    password: "from-env",
    database: "site",
  });
});

Deno.test("parseStoreUrl() reads TLS settings; certificates are verified by default", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fc-url-"));
  try {
    const ca = path.join(dir, "ca.pem");
    fs.writeFileSync(ca, "PEM");
    const tls = (q: string) => {
      const u = parseStoreUrl(`postgres://u:p@h/d?${q}`);
      return u.kind === "sqlite" ? undefined : u.tls;
    };
    assertEquals(tls("sslmode=disable"), undefined);
    assertEquals(tls("sslmode=require"), { verifyChain: true, verifyHost: true });
    assertEquals(tls("sslmode=verify-full"), { verifyChain: true, verifyHost: true });
    assertEquals(tls("sslmode=verify-ca"), { verifyChain: true, verifyHost: false });
    assertEquals(tls("sslmode=no-verify"), { verifyChain: false, verifyHost: false });
    assertEquals(tls(`sslrootcert=${ca}`), { verifyChain: true, verifyHost: true, ca: "PEM" });
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

Deno.test("parseStoreUrl() rejects unusable URLs without showing the password", () => {
  for (
    const [url, part] of [
      ["sqlite:relative.db", "must be absolute"],
      ["redis://u:s3cret@h/d", "scheme"],
      ["postgres://u:s3cret@h/", "database name"],
      ["postgres://u:s3cret@h/d?sslmode=maybe", "sslmode"],
      ["postgres://u:s3cret@h/d?timeout=3", "unknown parameter"],
      ["mysql://u:s3cret@h/d?sslrootcert=/nonexistent/ca.pem", "CA file"],
    ] as const
  ) {
    const e = assertThrows(() => parseStoreUrl(url), TypeError, part);
    assertEquals(e.message.includes("s3cret"), false, e.message);
  }
});

Deno.test("redactStoreUrl() hides the password only", () => {
  assertEquals(
    redactStoreUrl("postgres://fc:s3cret@db:5432/site?sslmode=require"),
    "postgres://fc:***@db:5432/site?sslmode=require",
  );
  assertEquals(redactStoreUrl("mysql://fc@db/site"), "mysql://fc@db/site");
  assertEquals(redactStoreUrl("sqlite:/var/lib/fc/shared.db"), "sqlite:/var/lib/fc/shared.db");
  assertEquals(redactStoreUrl("not a url //u:pw@host"), "not a url //***@host");
});
