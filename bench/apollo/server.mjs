// The canonical Node BFF, as the benchmark's peer of bff-mobile: Apollo Server with
// @apollo/datasource-rest serving the SAME mobile home query (schemas/mobile.graphql, `home`)
// against the same sample backends, with the same backend calls in the same two waves:
//
//   wave 1: users /users/{id}?fields= (once, shared by `greeting` and `me`), cart
//           /carts/{id}, notifications /notifications?userId=&limit=0, orders
//           /orders?userId=&limit=N&fields=, recommendations
//           /recommendations?userId=&limit=N&fields=items.productId, promotions /promotions?userId=&placement=home&fields=
//   wave 2: catalog /products?ids=...&fields=id,title,price,images.thumb (one batch for all
//           recommended products, only the members a card shows) and shipping
//           /shipments?orderIds=...&fields=orderId,eta (one batch for every order's `eta`)
//
// The caller is identified by an RS256 bearer JWT checked against the demo IdP's JWKS (issuer,
// audience "mobile", exp/nbf with 30 s leeway), as bff-mobile does: node:crypto, no extra
// package. Data sources are created per request with the server's shared cache, as the
// Apollo docs show. HTTP caching of backend responses (RESTDataSource honours
// Cache-Control: catalog and promotions say public, max-age=60) is OFF unless
// APOLLO_HTTP_CACHE=on: the cold-cache scenario makes every call, the warm one may cache.
//
// Env: PORT (default 8403), BACKENDS_BASE (default http://127.0.0.1, ports 9100-9109),
// WORKERS (node:cluster workers, default: one per CPU), APOLLO_HTTP_CACHE (on|off).
// Run with NODE_ENV=production.

import cluster from "node:cluster";
import crypto from "node:crypto";
import os from "node:os";

import { ApolloServer } from "@apollo/server";
import { startStandaloneServer } from "@apollo/server/standalone";
import { RESTDataSource } from "@apollo/datasource-rest";
import { GraphQLError } from "graphql";

const PORT = Number(process.env.PORT ?? 8403);
const HOST = process.env.BACKENDS_BASE ?? "http://127.0.0.1";
const WORKERS = Number(process.env.WORKERS ?? os.availableParallelism());
const HTTP_CACHE = process.env.APOLLO_HTTP_CACHE === "on";
const ISSUER = "http://127.0.0.1:9100";
const AUDIENCE = "mobile";
const LEEWAY_S = 30;

const typeDefs = `#graphql
  type Query {
    "Everything the home screen shows, for the caller of the token."
    home: Home
  }
  type Home {
    greeting: String
    me: Me!
    cart: CartSummary
    notifications: NotificationSummary
    recentOrders(first: Int! = 3): [OrderSummary!]
    recommendations(first: Int! = 10): [ProductCard!]
    banners: [Banner!]
  }
  type Me { id: String! name: String! avatarUrl: String! }
  type CartSummary { itemCount: Int! }
  type NotificationSummary { unreadCount: Int! }
  type Money { amount: String! currency: String! }
  type OrderSummary { id: String! status: String! total: Money! itemCount: Int! eta: String }
  type ProductCard { id: String! title: String! price: Money! thumbnailUrl: String! }
  type Banner { id: String! title: String! imageUrl: String! link: String! }
`;

// ---------------------------------------------------------------- data sources

class Backend extends RESTDataSource {
  constructor(port, options) {
    super(options);
    this.baseURL = `${HOST}:${port}/`;
  }
  getJson(path, params) {
    return this.get(path, { params, skipCache: !HTTP_CACHE });
  }
}

class Users extends Backend {
  constructor(o) { super(9101, o); }
  // Only the members bff-mobile reads (backends' `User`), as it asks.
  user(id) { return this.getJson(`users/${encodeURIComponent(id)}`, { fields: "id,name,avatar.small" }); }
}
class Orders extends Backend {
  constructor(o) { super(9102, o); }
  // Only the members bff-mobile reads (backends' `OrderHead`), as it asks.
  list(userId, limit) {
    return this.getJson("orders", { userId, limit: String(limit), fields: "id,status,total,items.quantity" });
  }
}
class Catalog extends Backend {
  constructor(o) { super(9103, o); }
  // Only what a product card shows, as bff-mobile asks (backends' `ProductSummary`).
  batch(ids) { return this.getJson("products", { ids: ids.join(","), fields: "id,title,price,images.thumb" }); }
}
class Recommendations extends Backend {
  constructor(o) { super(9104, o); }
  // The picks' product ids alone, as bff-mobile asks.
  forUser(userId, limit) {
    return this.getJson("recommendations", { userId, limit: String(limit), fields: "items.productId" });
  }
}
class Notifications extends Backend {
  constructor(o) { super(9105, o); }
  // The unread count alone, as bff-mobile asks.
  forUser(userId) { return this.getJson("notifications", { userId, limit: "0" }); }
}
class Carts extends Backend {
  constructor(o) { super(9106, o); }
  // Only the lines' quantities bff-mobile counts (backends' `CartCount`), as it asks.
  cart(userId) { return this.getJson(`carts/${encodeURIComponent(userId)}`, { fields: "userId,items.quantity" }); }
}
class Shipping extends Backend {
  constructor(o) { super(9108, o); }
  // Only when each order arrives (backends' `ShipmentEta`), as bff-mobile asks.
  forOrders(orderIds) { return this.getJson("shipments", { orderIds: orderIds.join(","), fields: "orderId,eta" }); }
}
class Promotions extends Backend {
  constructor(o) { super(9109, o); }
  // Only a banner's members (backends' `Promotion`), as bff-mobile asks.
  forUser(userId) {
    return this.getJson("promotions", { userId, placement: "home", fields: "id,title,images.medium,link" });
  }
}

// A minimal per-request batch loader (what DataLoader does): every load made while one wave
// of fields resolves becomes ONE call.
class Batcher {
  constructor(fetchMany, keyOf) {
    this.fetchMany = fetchMany;
    this.keyOf = keyOf;
    this.pending = null;
  }
  load(key) {
    if (!this.pending) {
      const pending = { keys: [], waiters: [] };
      this.pending = pending;
      setImmediate(() => this.dispatch(pending));
    }
    return new Promise((resolve, reject) => {
      this.pending.keys.push(key);
      this.pending.waiters.push({ key, resolve, reject });
    });
  }
  async dispatch(pending) {
    this.pending = null;
    const keys = [...new Set(pending.keys)];
    try {
      const found = new Map((await this.fetchMany(keys)).map((v) => [this.keyOf(v), v]));
      for (const w of pending.waiters) w.resolve(found.get(w.key) ?? null);
    } catch (e) {
      for (const w of pending.waiters) w.reject(e);
    }
  }
}

// ---------------------------------------------------------------- auth

let keys = new Map();

async function loadJwks() {
  const response = await fetch(`${ISSUER}/.well-known/jwks.json`);
  if (!response.ok) throw new Error(`JWKS: HTTP ${response.status}`);
  const { keys: jwks } = await response.json();
  keys = new Map(jwks.map((jwk) => [jwk.kid, crypto.createPublicKey({ key: jwk, format: "jwk" })]));
}

function unauthenticated(message) {
  return new GraphQLError(message, {
    extensions: { code: "UNAUTHENTICATED", http: { status: 401 } },
  });
}

function userOf(authorization) {
  const token = authorization?.startsWith("Bearer ") ? authorization.slice(7) : null;
  if (!token) throw unauthenticated("a bearer token is required");
  const parts = token.split(".");
  if (parts.length !== 3) throw unauthenticated("malformed token");
  let header;
  let claims;
  try {
    header = JSON.parse(Buffer.from(parts[0], "base64url"));
    claims = JSON.parse(Buffer.from(parts[1], "base64url"));
  } catch {
    throw unauthenticated("malformed token");
  }
  const key = keys.get(header.kid);
  if (header.alg !== "RS256" || !key) throw unauthenticated("unknown signing key");
  const signed = Buffer.from(`${parts[0]}.${parts[1]}`);
  if (!crypto.verify("RSA-SHA256", signed, key, Buffer.from(parts[2], "base64url"))) {
    throw unauthenticated("bad signature");
  }
  const now = Date.now() / 1000;
  const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (claims.iss !== ISSUER || !audiences.includes(AUDIENCE)) throw unauthenticated("wrong issuer or audience");
  if (typeof claims.exp !== "number" || claims.exp + LEEWAY_S < now) throw unauthenticated("expired");
  if (typeof claims.nbf === "number" && claims.nbf - LEEWAY_S > now) throw unauthenticated("not yet valid");
  if (typeof claims.sub !== "string" || !claims.sub) throw unauthenticated("no subject");
  return claims.sub;
}

// ---------------------------------------------------------------- resolvers

function salutation(hour) {
  if (hour >= 5 && hour <= 11) return "Good morning";
  if (hour >= 12 && hour <= 17) return "Good afternoon";
  return "Good evening";
}

const money = (m) => ({ amount: m.amount, currency: m.currency });

const resolvers = {
  Query: {
    home: (_, __, ctx) => ({ userId: ctx.userId }),
  },
  Home: {
    greeting: async (home, _, { dataSources }) => {
      const user = await dataSources.users.user(home.userId);
      const first = user.name.split(/\s+/)[0] || user.name;
      return `${salutation(new Date().getUTCHours())}, ${first}`;
    },
    me: async (home, _, { dataSources }) => {
      const user = await dataSources.users.user(home.userId);
      return { id: user.id, name: user.name, avatarUrl: user.avatar.small.url };
    },
    cart: async (home, _, { dataSources }) => {
      const cart = await dataSources.cart.cart(home.userId);
      return { itemCount: cart.items.reduce((n, line) => n + line.quantity, 0) };
    },
    notifications: async (home, _, { dataSources }) => {
      const list = await dataSources.notifications.forUser(home.userId);
      return { unreadCount: list.unreadCount };
    },
    recentOrders: async (home, { first }, { dataSources }) => {
      const page = await dataSources.orders.list(home.userId, first);
      return page.items.slice(0, first).map((o) => ({
        id: o.id,
        status: o.status,
        total: money(o.total),
        itemCount: o.items.reduce((n, line) => n + line.quantity, 0),
      }));
    },
    recommendations: async (home, { first }, { dataSources, loaders }) => {
      const picks = await dataSources.recommendations.forUser(home.userId, first);
      const ids = picks.items.slice(0, first).map((r) => r.productId);
      const products = await Promise.all(ids.map((id) => loaders.product.load(id)));
      return products.filter(Boolean).map((p) => ({
        id: p.id,
        title: p.title,
        price: money(p.price),
        thumbnailUrl: p.images.thumb.url,
      }));
    },
    banners: async (home, _, { dataSources }) => {
      const promotions = await dataSources.promotions.forUser(home.userId);
      return promotions.items.map((p) => ({
        id: p.id,
        title: p.title,
        imageUrl: p.images.medium.url,
        link: p.link,
      }));
    },
  },
  OrderSummary: {
    eta: async (order, _, { loaders }) => {
      const shipment = await loaders.shipment.load(order.id);
      return shipment ? shipment.eta : null;
    },
  },
};

// ---------------------------------------------------------------- server

async function worker() {
  await loadJwks();
  const server = new ApolloServer({ typeDefs, resolvers });
  const { cache } = server;
  const { url } = await startStandaloneServer(server, {
    listen: { host: "127.0.0.1", port: PORT },
    context: async ({ req }) => {
      const userId = userOf(req.headers.authorization);
      const dataSources = {
        users: new Users({ cache }),
        orders: new Orders({ cache }),
        catalog: new Catalog({ cache }),
        recommendations: new Recommendations({ cache }),
        notifications: new Notifications({ cache }),
        cart: new Carts({ cache }),
        shipping: new Shipping({ cache }),
        promotions: new Promotions({ cache }),
      };
      const loaders = {
        product: new Batcher(async (ids) => (await dataSources.catalog.batch(ids)).items, (p) => p.id),
        shipment: new Batcher(async (ids) => (await dataSources.shipping.forOrders(ids)).items, (s) => s.orderId),
      };
      return { userId, dataSources, loaders };
    },
  });
  if (!cluster.isWorker || cluster.worker.id === 1) console.log(`ready ${url}`);
}

if (cluster.isPrimary && WORKERS > 1) {
  // node:cluster shares the listening port among the workers (one per CPU), as Node's docs
  // recommend for using every core; a worker that dies ends the benchmark run (no respawn).
  for (let i = 0; i < WORKERS; i++) cluster.fork();
  cluster.on("exit", (w, code) => {
    if (code !== 0) {
      console.error(`worker ${w.process.pid} exited with ${code}`);
      process.exitCode = 1;
    }
  });
  for (const signal of ["SIGTERM", "SIGINT"]) {
    process.on(signal, () => {
      for (const w of Object.values(cluster.workers)) w.process.kill("SIGTERM");
    });
  }
} else {
  worker().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
