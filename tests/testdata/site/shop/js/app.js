/*! Example shop app v1.0 | (c) Example Ltd | MIT licence */
/* A classic (non-module) ES5 script: its top-level names are globals that
   other scripts use, so a minifier must not rename them. */
var SHOP_VERSION = "1.0.0";
var Shop = Shop || {};

(function (Shop) {
  "use strict";

  var CURRENCY_SYMBOLS = { EUR: "\u20ac", USD: "$", GBP: "\u00a3", JPY: "\u00a5" };

  /**
   * Formats an amount in cents as a price string.
   * @param {number} cents
   * @param {string} currency
   */
  function formatPrice(cents, currency) {
    var negative = cents < 0;
    var abs = Math.abs(cents);
    var whole = Math.floor(abs / 100);
    var fraction = abs % 100;
    var wholeText = String(whole).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    var symbol = CURRENCY_SYMBOLS[currency] !== undefined
      ? CURRENCY_SYMBOLS[currency]
      : currency + " ";
    return (negative ? "-" : "") + symbol + wholeText + "." + (fraction < 10 ? "0" : "") + fraction;
  }

  function Cart(taxRate) {
    this.items = [];
    this.taxRate = typeof taxRate === "number" ? taxRate : 0.2;
  }

  Cart.prototype.add = function (sku, price, quantity) {
    if (quantity === undefined || quantity === null) quantity = 1;
    for (var i = 0; i < this.items.length; i++) {
      if (this.items[i].sku === sku) {
        this.items[i].quantity += quantity;
        return this;
      }
    }
    this.items.push({ sku: sku, price: price, quantity: quantity });
    return this;
  };

  Cart.prototype.remove = function (sku) {
    var kept = [];
    for (var i = 0; i < this.items.length; i++) {
      if (this.items[i].sku !== sku) kept.push(this.items[i]);
    }
    this.items = kept;
    return this;
  };

  Cart.prototype.subtotal = function () {
    var total = 0;
    for (var i = 0; i < this.items.length; i++) {
      total += this.items[i].price * this.items[i].quantity;
    }
    return total;
  };

  Cart.prototype.total = function () {
    var subtotal = this.subtotal();
    return Math.round(subtotal * (1 + this.taxRate));
  };

  Cart.prototype.summary = function (currency) {
    var lines = [];
    var self = this;
    this.items.sort(function (a, b) {
      return a.sku < b.sku ? -1 : a.sku > b.sku ? 1 : 0;
    });
    for (var i = 0; i < self.items.length; i++) {
      var item = self.items[i];
      lines.push(item.quantity + " x " + item.sku + " @ " + formatPrice(item.price, currency));
    }
    lines.push("Total: " + formatPrice(self.total(), currency));
    return lines.join("\n");
  };

  /** A tiny template engine: "Hello {{name}}" with HTML escaping. */
  function render(template, data) {
    return template.replace(/\{\{\s*([\w.]+)\s*\}\}/g, function (match, key) {
      var value = data;
      var parts = key.split(".");
      for (var i = 0; i < parts.length; i++) {
        if (value === undefined || value === null) return "";
        value = value[parts[i]];
      }
      return escapeHtml(value === undefined || value === null ? "" : String(value));
    });
  }

  function escapeHtml(text) {
    var map = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
    return text.replace(/[&<>"']/g, function (c) {
      return map[c];
    });
  }

  function debounce(fn, wait) {
    var timer = null;
    return function () {
      var context = this, args = arguments;
      if (timer !== null) clearTimeout(timer);
      timer = setTimeout(function () {
        timer = null;
        fn.apply(context, args);
      }, wait);
    };
  }

  function parseQuery(query) {
    var result = {};
    if (!query) return result;
    var pairs = query.replace(/^\?/, "").split("&");
    for (var i = 0; i < pairs.length; i++) {
      if (pairs[i] === "") continue;
      var kv = pairs[i].split("=");
      var key = decodeURIComponent(kv[0]);
      var value = kv.length > 1 ? decodeURIComponent(kv.slice(1).join("=")) : "";
      if (result.hasOwnProperty(key)) {
        if (Object.prototype.toString.call(result[key]) !== "[object Array]") {
          result[key] = [result[key]];
        }
        result[key].push(value);
      } else {
        result[key] = value;
      }
    }
    return result;
  }

  Shop.formatPrice = formatPrice;
  Shop.Cart = Cart;
  Shop.render = render;
  Shop.debounce = debounce;
  Shop.parseQuery = parseQuery;
})(Shop);

/* Used by the tests: returns the results of the functions above. */
function selfTest() {
  var cart = new Shop.Cart(0.21);
  cart.add("mug", 1250, 2).add("tee", 1999).add("mug", 1250).add("cap", 1500).remove("cap");
  return {
    version: SHOP_VERSION,
    prices: [
      Shop.formatPrice(123456789, "EUR"),
      Shop.formatPrice(-5, "USD"),
      Shop.formatPrice(100, "CHF"),
    ],
    subtotal: cart.subtotal(),
    total: cart.total(),
    summary: cart.summary("GBP"),
    html: Shop.render("<p>{{ user.name }} has {{count}} items {{missing.x}}</p>", {
      user: { name: 'Ann <admin> & "co"' },
      count: 3,
    }),
    query: Shop.parseQuery("?a=1&b=x%20y&a=2&c&d=e=f"),
    typeofDebounce: typeof Shop.debounce(function () {}, 10),
  };
}
