// Manifold admin dashboard: polls /admin/api/status every 2 s, turns two snapshots into
// rates, and renders. No framework, no build step.
"use strict";

const REFRESH_MS = 2000;
let previous = null;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function num(v, digits) {
  if (v === null || v === undefined) return "–";
  return Number(v).toFixed(digits === undefined ? 1 : digits);
}

function rate(now, before, seconds) {
  if (before === undefined || seconds <= 0) return 0;
  return Math.max(0, (now - before) / seconds);
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    if (c instanceof Node) {
      const td = document.createElement("td");
      td.appendChild(c);
      tr.appendChild(td);
    } else if (typeof c === "number") {
      tr.appendChild(el("td", c, "num"));
    } else {
      tr.appendChild(el("td", c));
    }
  }
  return tr;
}

function fill(tableId, rows) {
  const body = document.querySelector("#" + tableId + " tbody");
  body.replaceChildren(...rows);
}

function failures(u) {
  return u.timeouts + u.unavailable + u.bad_responses + u.rejected + u.circuit_open + u.saturated;
}

function render(s, taken) {
  const seconds = previous ? (taken - previous.taken) / 1000 : 0;
  const before = previous ? previous.status : null;
  document.getElementById("bff").textContent = s.bff;
  document.getElementById("version").textContent = s.version;
  document.getElementById("uptime").textContent = s.uptime_s + " s";
  document.getElementById("ready").textContent = s.draining ? "draining" : (s.ready ? "ready" : "not ready");
  document.getElementById("in-flight").textContent = s.in_flight;
  document.getElementById("updated").textContent = new Date(taken).toLocaleTimeString();

  const total = s.routes.reduce((a, r) => a + r.requests, 0);
  const totalBefore = before ? before.routes.reduce((a, r) => a + r.requests, 0) : undefined;
  document.getElementById("req-rate").textContent = num(rate(total, totalBefore, seconds));

  const c = s.cache;
  const lookups = c.hit + c.miss + c.stale;
  document.getElementById("cache-ratio").textContent = lookups ? num(100 * c.hit / lookups) + " %" : "no lookups";
  document.getElementById("cache-counts").textContent = `hit ${c.hit} · miss ${c.miss} · stale ${c.stale}`;
  document.getElementById("rl-refused").textContent = s.rate_limit.refused;
  document.getElementById("rl-detail").textContent = s.rate_limit.enabled
    ? `allowed ${s.rate_limit.allowed}` : "no limits configured";
  document.getElementById("reloads").textContent = `${s.config_reloads.success} / ${s.config_reloads.failure}`;

  const upRows = [];
  for (const u of s.upstreams) {
    const old = before ? before.upstreams.find((x) => x.name === u.name) : undefined;
    const instances = u.instances.length ? u.instances : [null];
    instances.forEach((i, n) => {
      const health = i ? (i.ejected ? "ejected" : (i.healthy ? "healthy" : "unhealthy")) : "–";
      const tr = row([
        n === 0 ? u.name : "",
        i ? i.url : "–",
        el("span", health, "state " + health),
        i ? el("span", i.breaker, "state " + i.breaker) : "–",
        n === 0 ? num(rate(u.calls, old && old.calls, seconds)) : "",
        n === 0 ? u.calls : "",
        n === 0 ? failures(u) : "",
        n === 0 ? u.retries : "",
        n === 0 ? num(u.latency_mean_ms) : "",
        n === 0 ? num(u.latency_p95_ms, 0) : "",
        i ? i.in_flight : "",
      ]);
      tr.dataset.upstream = u.name;
      if (i) tr.dataset.breaker = i.breaker;
      upRows.push(tr);
    });
  }
  fill("upstreams", upRows);

  fill("routes", s.routes.map((r) => {
    const old = before ? before.routes.find((x) => x.route === r.route && x.operation === r.operation) : undefined;
    const tr = row([
      r.route, r.operation || "", num(rate(r.requests, old && old.requests, seconds)),
      r.requests, r.by_class["5xx"], r.by_class["4xx"], num(r.latency_mean_ms), num(r.latency_p95_ms, 0),
    ]);
    tr.dataset.route = r.route;
    return tr;
  }));

  fill("errors", s.recent_errors.slice(0, 20).map((e) => row([
    new Date(e.at_ms).toLocaleTimeString(), e.request_id, e.route, e.operation || "",
    e.status, num(e.latency_ms), e.failed_backends.join(", "),
  ])));
  previous = { status: s, taken };
}

// With [admin] token set, every data call needs it: asked once, kept for this tab only.
const TOKEN_KEY = "manifold-admin-token";

async function call(path) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const response = await fetch(path, { cache: "no-store", headers });
  if (response.status === 401) {
    const given = window.prompt("This admin listener needs its token (admin.token):");
    if (given) sessionStorage.setItem(TOKEN_KEY, given.trim());
  }
  return response;
}

async function refresh() {
  try {
    const response = await call("/admin/api/status");
    if (response.ok) render(await response.json(), Date.now());
  } catch (e) {
    document.getElementById("updated").textContent = "unreachable";
  }
}

async function loadConfig() {
  try {
    const response = await call("/admin/api/config");
    if (response.ok) document.getElementById("config").textContent = JSON.stringify((await response.json()).config, null, 2);
  } catch (e) {
    document.getElementById("config").textContent = "unavailable";
  }
}

refresh();
loadConfig();
setInterval(refresh, REFRESH_MS);
setInterval(loadConfig, 30 * REFRESH_MS);
