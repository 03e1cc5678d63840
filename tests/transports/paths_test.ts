import {
  normalizeRoot,
  relativeToRoot,
  remotePathFor,
  underRoot,
} from "../../src/transports/paths.ts";
import { assertEquals } from "../_assert.ts";

// Two independent statements of the rule, as oracles.
function ftpRule(text: string): string {
  const root = text.trim();
  const parts = root.split("/").filter((p) => p !== "" && p !== ".");
  return root.startsWith("/") ? "/" + parts.join("/") : parts.join("/");
}

function sftpRule(text: string): string {
  let root = text.trim().replace(/\/+$/, "");
  if (root === "" && text.trim().startsWith("/")) root = "/";
  if (root !== "" && root !== "/") {
    const parts = root.split("/").filter((p) => p !== "" && p !== ".");
    root = (root.startsWith("/") ? "/" : "") + parts.join("/");
  }
  return root;
}

Deno.test("normalizeRoot() agrees with both former transport rules on every short path", () => {
  const alphabet = ["", "/", ".", "a", " ", "b/"];
  let inputs = [""];
  for (let len = 0; len < 4; len++) {
    inputs = [...new Set([...inputs, ...inputs.flatMap((x) => alphabet.map((c) => x + c))])];
  }
  for (const text of inputs) {
    const n = normalizeRoot(text);
    assertEquals(n, ftpRule(text), JSON.stringify(text));
    assertEquals(n, sftpRule(text), JSON.stringify(text));
  }
  assertEquals(normalizeRoot(" /srv//www/./ "), "/srv/www");
  assertEquals(normalizeRoot("///"), "/");
  assertEquals(normalizeRoot("./"), "");
});

Deno.test("underRoot() and relativeToRoot() are inverses for every root form", () => {
  for (
    const [root, full] of [["", "a/b.css"], ["/", "/a/b.css"], ["/srv", "/srv/a/b.css"], [
      "www",
      "www/a/b.css",
    ]] as const
  ) {
    assertEquals(underRoot(root, "a/b.css"), full);
    assertEquals(relativeToRoot(root, full), "a/b.css");
  }
});

Deno.test("remotePathFor() joins the destination, directory and name, skipping empty parts", () => {
  assertEquals(remotePathFor("static", "css", "a.css"), "static/css/a.css");
  assertEquals(remotePathFor("", "", "a.css"), "a.css");
  assertEquals(remotePathFor("static", "", "a.css"), "static/a.css");
});
