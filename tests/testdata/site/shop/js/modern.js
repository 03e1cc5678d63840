// Modern syntax (ES2022): classes with private fields, optional chaining,
// nullish coalescing, destructuring, spread, generators, template literals.
const DEFAULTS = { pageSize: 10, sort: "name", filters: {} };

class Catalogue {
  #products = [];
  static #instances = 0;

  constructor(products = [], options = {}) {
    this.options = { ...DEFAULTS, ...options };
    this.#products = products.map((p, index) => ({ id: index + 1, ...p }));
    Catalogue.#instances++;
  }

  static get instances() {
    return Catalogue.#instances;
  }

  get size() {
    return this.#products.length;
  }

  *[Symbol.iterator]() {
    yield* this.#products;
  }

  find({ name, maxPrice = Infinity, tag } = {}) {
    return this.#products.filter((p) =>
      (name === undefined || p.name.toLowerCase().includes(name.toLowerCase())) &&
      p.price <= maxPrice &&
      (tag === undefined || (p.tags?.includes(tag) ?? false))
    );
  }

  page(n = 1) {
    const { pageSize, sort } = this.options;
    const sorted = [...this.#products].sort((a, b) =>
      String(a[sort]).localeCompare(String(b[sort]))
    );
    return sorted.slice((n - 1) * pageSize, n * pageSize);
  }

  describe(id) {
    const p = this.#products.find((x) => x.id === id);
    return `${p?.name ?? "unknown"} costs ${p?.price?.toFixed(2) ?? "n/a"}${
      p?.tags?.length ? ` [${p.tags.join(", ")}]` : ""
    }`;
  }
}

async function loadAll(sources) {
  const results = [];
  for await (
    const value of (async function* () {
      for (const s of sources) yield await Promise.resolve(s * 2);
    })()
  ) {
    results.push(value);
  }
  return results;
}

function selfTest() {
  const catalogue = new Catalogue([
    { name: "Mug", price: 12.5, tags: ["kitchen", "gift"] },
    { name: "T-shirt", price: 19.99, tags: ["clothes"] },
    { name: "Cap", price: 15 },
    { name: "Sticker", price: 1.5, tags: [] },
  ], { pageSize: 2 });
  let counter = 0;
  counter ||= 5;
  counter &&= counter + 1;
  let maybe = null;
  maybe ??= "default";
  const { a = 1, ...rest } = { b: 2, c: 3 };
  const big = 2n ** 64n;
  return {
    size: catalogue.size,
    instances: Catalogue.instances,
    names: [...catalogue].map((p) => p.name),
    cheap: catalogue.find({ maxPrice: 15 }).map((p) => p.id),
    gifts: catalogue.find({ tag: "gift" }).map((p) => p.name),
    page2: catalogue.page(2).map((p) => p.name),
    describe: [1, 3, 99].map((id) => catalogue.describe(id)),
    counter,
    maybe,
    a,
    rest,
    big: big.toString(),
    loaded: loadAll([1, 2, 3]) instanceof Promise,
  };
}
