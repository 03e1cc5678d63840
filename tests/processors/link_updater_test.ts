import { Buffer } from "node:buffer";
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals, assertIncludes, assertRejects } from "../_assert.ts";
import { RequeueError } from "../../src/errors.ts";
import { chainIsPerServer } from "../../src/processors/chain.ts";
import {
  formatCssUrl,
  rewriteCssUrls,
  scanCssUrls,
  unescapeCss,
} from "../../src/processors/_css_urls.ts";
import { appendSuffix, resetWaiting, resolveCssUrl } from "../../src/processors/link_updater.ts";
import { cdnLookup, ref, run, SHOP, SHOP_SOURCE, SITE, tempDir } from "./_helpers.ts";

const CDN = "https://cdn.example.com/";
const STYLE = path.join(SHOP, "css", "style.css");
const updater = () => ref("link_updater.CSSURLUpdater");

Deno.test("scanCssUrls finds url(), @import and image-set URLs and skips comments and strings", () => {
  const css = [
    `/* url(comment.png) */ @import "a.css"; @import url(b.css) screen;`,
    `@IMPORT /* c */ 'c.css';`,
    `x { background: url( "d e.png" ) , URL(f\\).png) , url(  g.png  ); content: "url(h.png)"; }`,
    `y { a: myurl(i.png); b: image-set("j.png" 1x, url(k.png) 2x); c: -webkit-image-set('l.png' 1x); }`,
    `z { d: u\\72l(m.png); e: url(); f: "str" url('n.png'); g: attr(x) "o.png"; }`,
    `w { h: url("unterminated`,
  ].join("\n");
  const urls = scanCssUrls(css);
  assertEquals(urls.map((u) => u.value), [
    "a.css",
    "b.css",
    "c.css",
    "d e.png",
    "f).png",
    "g.png",
    "j.png",
    "k.png",
    "l.png",
    "m.png",
    "n.png",
    "unterminated",
  ]);
  assertEquals(urls.map((u) => u.kind).slice(0, 3), ["import", "url", "import"]);
  assertEquals(urls[3]!.quote, '"');
  assertEquals(urls[4]!.quote, "");
  // Ranges cover exactly the raw URL text.
  assertEquals(css.slice(urls[4]!.start, urls[4]!.end), "f\\).png");
  assertEquals(css.slice(urls[5]!.start, urls[5]!.end), "g.png");
});

Deno.test("CSS escapes are decoded and URLs quoted only when needed", () => {
  assertEquals(unescapeCss('a\\ b\\"c\\e9 d\\\nx'), 'a b"céd' + "x");
  assertEquals(formatCssUrl("https://x/a.png", ""), "https://x/a.png");
  assertEquals(formatCssUrl("https://x/a b.png", ""), '"https://x/a b.png"');
  assertEquals(formatCssUrl("it's", "'"), "it\\'s");
  const css = "a{b:url(x.png)} c{d:url('y.png')}";
  assertEquals(
    rewriteCssUrls(
      css,
      scanCssUrls(css),
      (u) => u.value === "x.png" ? "http://cdn/x 1.png" : undefined,
    ),
    `a{b:url("http://cdn/x 1.png")} c{d:url('y.png')}`,
  );
});

Deno.test("resolveCssUrl follows the original's rules", () => {
  const src = SHOP_SOURCE;
  const skip = (u: string) => assertEquals(resolveCssUrl(u, STYLE, src).kind, "skip", u);
  for (
    const u of [
      "data:image/png;base64,xx",
      "http://x/y.png",
      "HTTPS://x/y.png",
      "//cdn/x.png",
      "#f",
      "",
      "  ",
    ]
  ) skip(u);
  assertEquals(resolveCssUrl("../img/a.png?x=1#y", STYLE, src), {
    kind: "file",
    path: path.join(SHOP, "img", "a.png"),
    suffix: "?x=1#y",
  });
  assertEquals(resolveCssUrl("../img/a%20b.png", STYLE, src), {
    kind: "file",
    path: path.join(SHOP, "img", "a b.png"),
    suffix: "",
  });
  // Physical basePath: SITE/shop exists, so root-relative URLs map onto the document root.
  assertEquals(resolveCssUrl("/shop/img/a.png", STYLE, src), {
    kind: "file",
    path: path.join(SHOP, "img", "a.png"),
    suffix: "",
  });
  assertEquals(resolveCssUrl("/shared/b.png", STYLE, src), {
    kind: "file",
    path: path.join(SITE, "shared", "b.png"),
    suffix: "",
  });
  assertEquals(resolveCssUrl("/../../etc/passwd", STYLE, src), {
    kind: "file",
    path: path.join(SITE, "etc", "passwd"),
    suffix: "",
  });
  // Logical basePath (a symlink on the web server): stripped; other root-relative URLs are left alone.
  const logical = { name: "shop", scanPath: SHOP, documentRoot: SHOP, basePath: "/shop/" };
  assertEquals(resolveCssUrl("/shop/img/a.png", STYLE, logical), {
    kind: "file",
    path: path.join(SHOP, "img", "a.png"),
    suffix: "",
  });
  assertEquals(resolveCssUrl("/shared/b.png", STYLE, logical).kind, "skip");
  // No documentRoot: root-relative URLs cannot be resolved.
  assertEquals(resolveCssUrl("/shop/a.png", STYLE, { name: "s", scanPath: SHOP }).kind, "skip");
});

Deno.test("appendSuffix re-appends queries and fragments", () => {
  assertEquals(appendSuffix("https://c/f.eot", "?#iefix"), "https://c/f.eot?#iefix");
  assertEquals(appendSuffix("https://c/f.png", "?v=3#x"), "https://c/f.png?v=3#x");
  assertEquals(appendSuffix("https://c/f.png?sig=1", "?v=3#x"), "https://c/f.png?sig=1&v=3#x");
  assertEquals(appendSuffix("https://c/f.eot?sig=1", "?#iefix"), "https://c/f.eot?sig=1#iefix");
  assertEquals(appendSuffix("https://c/f.png", ""), "https://c/f.png");
});

Deno.test("link_updater rewrites every URL form of the fixture stylesheet and nothing else", async () => {
  const input = fs.readFileSync(STYLE, "latin1");
  const out = await run(updater(), STYLE, { server: "cdn", lookupUrl: cdnLookup(CDN) });
  const css = new TextDecoder().decode(out.bytes);
  const expected = [
    `@import "${CDN}shop/css/print.css" print;`,
    `@import url('${CDN}shop/css/fonts.css');`,
    `url(${CDN}shop/img/bg.png) repeat-x`,
    `url("${CDN}shop/img/logo.png");`,
    `url( '${CDN}shop/img/icon.gif' ) no-repeat`,
    `URL(${CDN}shop/img/spinner.gif)`,
    `url(${CDN}shop/img/photo.jpg);`,
    `url("${CDN}shared/img/banner.png");`,
    `url(${CDN}shop/img/with%20space.png);`,
    `url("${CDN}shop/img/with%20space.png") 30 round`,
    `image-set("${CDN}shop/img/logo.png" 1x, url(${CDN}shop/img/photo.jpg) 2x)`,
    `url(${CDN}shop/img/sprite.svg?v=3#icon-cart)`,
    `url(${CDN}shop/img/logo.png?size=large)`,
  ];
  for (const e of expected) assertIncludes(css, e);
  const unchanged = [
    "url(img/in-a-comment.png)",
    `url("data:image/svg+xml;charset=utf-8,%3Csvg xmlns='http://www.w3.org/2000/svg' width='4' height='4'%3E%3C/svg%3E")`,
    "url(data:image/gif;base64,R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==)",
    "url(http://example.com/external.png)",
    "url(https://example.com/cursor.cur)",
    "url(//cdn.example.net/mask.svg)",
    "url(#blur)",
    "url(../img/does-not-exist.png)",
    `content: "url(not-a-url.png)";`,
  ];
  for (const u of unchanged) assertIncludes(css, u);
  // Everything outside the URL tokens is byte-for-byte the same.
  const strip = (text: string) => {
    let s = "", last = 0;
    for (const u of scanCssUrls(text)) {
      s += text.slice(last, u.start) + "<URL>";
      last = u.end;
    }
    return s + text.slice(last);
  };
  assertEquals(strip(css), strip(input));
  // Every referenced source path is reported, the missing one too.
  const refs = new Set(out.references);
  for (
    const f of [
      "css/print.css",
      "css/fonts.css",
      "img/bg.png",
      "img/logo.png",
      "img/with space.png",
      "img/sprite.svg",
    ]
  ) {
    assert(refs.has(path.join(SHOP, f)), f);
  }
  assert(refs.has(path.join(SITE, "shared", "img", "banner.png")));
  assert(refs.has(path.join(SHOP, "img", "does-not-exist.png")));
});

Deno.test("link_updater keeps the bulletproof @font-face ?#iefix", async () => {
  const out = await run(updater(), path.join(SHOP, "css", "fonts.css"), {
    server: "cdn",
    lookupUrl: cdnLookup(CDN),
  });
  const css = new TextDecoder().decode(out.bytes);
  assertIncludes(css, `url('${CDN}shop/fonts/font.eot?#iefix') format('embedded-opentype')`);
  assertIncludes(css, `url("${CDN}shop/fonts/font.woff2") format("woff2")`);
  assertIncludes(css, `url(${CDN}shop/fonts/font.ttf) format("truetype")`);
});

Deno.test("link_updater re-queues a stylesheet whose referenced files are not synced yet", async () => {
  resetWaiting();
  const logo = path.join(SHOP, "img", "logo.png");
  const err = await assertRejects(
    () => run(updater(), STYLE, { server: "cdn", lookupUrl: cdnLookup(CDN, [logo]) }),
    RequeueError,
    'waits for 1 referenced file(s) to be synced to "cdn"',
  );
  assertIncludes(err.message, logo);
  // After maxWait it is published with the unsynced URLs unchanged.
  const out = await run(ref("link_updater.CSSURLUpdater", { maxWait: "0" }), STYLE, {
    server: "cdn",
    lookupUrl: cdnLookup(CDN, [logo]),
  });
  const css = new TextDecoder().decode(out.bytes);
  assertIncludes(css, `url("../img/logo.png")`);
  assertIncludes(css, `url(${CDN}shop/img/bg.png)`);
  resetWaiting();
});

Deno.test("link_updater leaves a stylesheet without URLs or without changes untouched", async () => {
  const t = tempDir();
  try {
    const plain = path.join(t.dir, "plain.css");
    fs.writeFileSync(plain, "a { color: red }\n");
    const ext = path.join(t.dir, "ext.css");
    fs.writeFileSync(ext, "a { background: url(http://x/y.png) }\n");
    const source = { name: "t", scanPath: t.dir };
    assert((await run(updater(), plain, { source })).unprocessed);
    const out = await run(updater(), ext, { source });
    assert(out.unprocessed);
    assertEquals(out.references, []);
  } finally {
    t.cleanup();
  }
});

Deno.test("link_updater keeps non-UTF-8 bytes and resolves UTF-8 file names", async () => {
  const t = tempDir();
  try {
    fs.writeFileSync(path.join(t.dir, "café.png"), "x");
    const file = path.join(t.dir, "a.css");
    const bytes = Buffer.concat([
      Buffer.from("/* caf\xe9 in Latin-1 */ a { background: url(", "latin1"),
      Buffer.from("café.png", "utf8"),
      Buffer.from(") }", "latin1"),
    ]);
    fs.writeFileSync(file, bytes);
    const source = { name: "t", scanPath: t.dir };
    const out = await run(updater(), file, {
      source,
      lookupUrl: (p) => p.endsWith("café.png") ? "https://c/caf%C3%A9.png" : undefined,
    });
    assertEquals(
      Buffer.from(out.bytes).toString("latin1"),
      "/* caf\xe9 in Latin-1 */ a { background: url(https://c/caf%C3%A9.png) }",
    );
  } finally {
    t.cleanup();
  }
});

Deno.test("link_updater makes the chain per server for stylesheets only", () => {
  assert(chainIsPerServer([updater()], "a.css"));
  assert(!chainIsPerServer([updater()], "a.js"));
});

Deno.test("link_updater resolves names that need CSS escapes, before and after a minifier", async () => {
  const t = tempDir();
  try {
    const names = ["ñandú.png", "日本.svg", "a b.png", "it's.png", "100%.png", 'q"x.png'];
    fs.mkdirSync(path.join(t.dir, "misc"));
    fs.mkdirSync(path.join(t.dir, "css"));
    for (const n of names) fs.writeFileSync(path.join(t.dir, "misc", n), "x");
    const file = path.join(t.dir, "css", "style.css");
    fs.writeFileSync(
      file,
      [
        `.a { background: url('../misc/ñandú.png'); }`,
        `.b { background: url("../misc/日本.svg"); }`,
        `.c { background: url("../misc/a b.png"); }`,
        `.d { background: url("../misc/it's.png"); }`,
        `.e { background: url(../misc/100%25.png); }`,
        `.f { background: url('../misc/q"x.png'); }`,
      ].join("\n"),
    );
    const cdn = (p: string) =>
      "https://cdn.test/" +
      path.relative(t.dir, p).split(path.sep).map(encodeURIComponent).join("/");
    const expected = names.map((n) => cdn(path.join(t.dir, "misc", n)));
    const source = { name: "t", scanPath: t.dir };
    const minify = ref("yui_compressor.YUICompressor");
    for (const chain of [[minify, updater()], [updater(), minify]]) {
      const order = chain.map((p) => p.name).join(" → ");
      const out = await run(chain, file, { source, lookupUrl: cdn });
      const css = Buffer.from(out.bytes).toString("utf8");
      const urls = scanCssUrls(css).map((u) => unescapeCss(u.value));
      assertEquals(urls.sort(), [...expected].sort(), `${order}: ${css}`);
    }
  } finally {
    t.cleanup();
  }
});
