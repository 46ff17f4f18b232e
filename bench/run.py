#!/usr/bin/env python3
"""Manifold against the peers users would pick instead, in one run: `python3 bench/run.py`.

Installs what is missing (wrk, nginx, HAProxy from Debian; the Apollo peer's npm packages from
bench/apollo/package-lock.json), builds the gateway in release, starts the sample backends,
the gateway in two configurations (plain and production), nginx, HAProxy and the Apollo
Server BFF, drives load with wrk (64 connections, fixed duration, scenarios interleaved and
repeated), measures memory and time to ready, stops everything it started, and writes the
tables to BENCHMARKS.md. Everything listens on 127.0.0.1 only. See bench/README.md.

Python 3.11+, standard library only.
"""

import argparse
import gzip
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import configs  # noqa: E402
import overload  # noqa: E402
import report  # noqa: E402
from procs import (Processes, cpu_seconds, cpu_split, http_request, open_connections,  # noqa: E402
                   peak_rss_mib, port_free, rss_mib, settle, status_is, wait_until)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
RELEASE = os.path.join(ROOT, "target", "release")
IDP_PORT = 9100
BACKEND_PORTS = range(9101, 9110)
USERS_PORT, ORDERS_PORT = 9101, 9102
READY_PROBE_PORT = 8190
USER_COUNT = 64  # distinct users (tokens) the mobile load rotates through

HOME = """query Home { home {
  greeting
  me { id name avatarUrl }
  cart { itemCount }
  notifications { unreadCount }
  recentOrders(first: 3) { id status total { amount currency } itemCount eta }
  recommendations(first: 10) { id title price { amount currency } thumbnailUrl }
  banners { id title imageUrl link }
} }"""


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(argv, timeout, **kwargs):
    """A command that must succeed within `timeout` seconds."""
    return subprocess.run(argv, check=True, timeout=timeout, **kwargs)


# ------------------------------------------------------------------ installing and building

def install(skip):
    missing = [pkg for tool, pkg in (("wrk", "wrk"), ("nginx", "nginx"), ("haproxy", "haproxy"))
               if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}")]
    if not shutil.which("node") or not shutil.which("npm"):
        missing += ["nodejs", "npm"]
    if missing:
        if skip:
            sys.exit(f"missing: {' '.join(missing)} (run without --no-install)")
        log(f"installing {' '.join(missing)} from Debian")
        # Debian starts a service when its package is installed; the benchmark starts its own.
        policy = "/usr/sbin/policy-rc.d"
        made_policy = not os.path.exists(policy)
        if made_policy:
            with open(policy, "w") as f:
                f.write("#!/bin/sh\nexit 101\n")
            os.chmod(policy, 0o755)
        try:
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            run(["apt-get", "update", "-qq"], timeout=300, env=env)
            run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                timeout=600, env=env)
        finally:
            if made_policy:
                os.remove(policy)
    node_major = int(subprocess.run(["node", "-p", "process.versions.node.split('.')[0]"],
                                    capture_output=True, text=True, timeout=30).stdout.strip())
    if node_major < 20:
        sys.exit(f"the Apollo peer (@apollo/server 5) needs Node.js 20 or newer, found {node_major}")
    apollo = os.path.join(BENCH, "apollo")
    if not os.path.isdir(os.path.join(apollo, "node_modules", "@apollo", "server")):
        if skip:
            sys.exit("bench/apollo/node_modules is missing (run without --no-install)")
        log("installing the Apollo peer's packages (npm ci, versions from package-lock.json)")
        run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], timeout=300, cwd=apollo)


def build(skip):
    if skip:
        log("using the existing release build (--no-build)")
    else:
        log("building the gateway in release (cargo build --release)")
        run(["cargo", "build", "--release", "-p", "bff-mobile", "-p", "bff-web", "-p", "bff-partner",
             "-p", "demo-services", "-p", "loadgen", "--bins", "--example", "backends"],
            timeout=1800, cwd=ROOT)
    for binary in ("bff-mobile", "bff-web", "bff-partner", "examples/backends", "loadgen",
                   "floor-proxy"):
        if not os.path.exists(os.path.join(RELEASE, binary)):
            sys.exit(f"target/release/{binary} is missing: build first (run without --no-build)")


# ------------------------------------------------------------------ the contenders

class Contender:
    """Something the load generator is pointed at."""

    def __init__(self, name, kind, proc, port, path, method="GET", body=None, headers=None,
                 tokens=None, check=None, bad=None):
        self.name = name          # as in the tables
        self.kind = kind          # "manifold", "peer" or "floor"
        self.proc = proc          # whose CPU and memory are measured
        self.port = port
        self.path = path
        self.method = method
        self.body = body
        self.headers = headers or {}
        self.tokens = tokens      # rotated per request (many users), else None
        self.check = check        # (status, body) -> error text or None
        self.bad = bad            # text that marks a 2xx answer under load as wrong
        self.peak_rss = 0.0


def graphql_ok(status, body):
    if status != 200:
        return f"status {status}: {body[:300]!r}"
    doc = json.loads(body)
    if doc.get("errors") or not doc.get("data", {}).get("home"):
        return f"GraphQL errors: {body[:300]!r}"
    return None


def gzip_graphql_ok(status, body):
    """A gzip-compressed home answer: decoded, then checked as `graphql_ok` does."""
    try:
        body = gzip.decompress(body)
    except OSError as e:
        return f"not gzip ({e}): {body[:100]!r}"
    return graphql_ok(status, body)


def rest_ok(status, body):
    if status != 200:
        return f"status {status}: {body[:300]!r}"
    doc = json.loads(body)
    if isinstance(doc, dict) and doc.get("degraded"):
        return f"degraded answer: {body[:300]!r}"
    return None


def mint(audience, sub, scopes=()):
    status, body = http_request(IDP_PORT, "POST", "/token", body=json.dumps(
        {"sub": str(sub), "aud": audience, "scopes": list(scopes), "ttl_s": 7200}),
        headers={"content-type": "application/json"})
    if status != 200:
        raise RuntimeError(f"the IdP refused a token: {status} {body!r}")
    return json.loads(body)["access_token"]


def start_gateway(procs, workdir, binary, name, doc, executable=None):
    """`binary` of the release build (or the file `executable`) on the config `doc`."""
    path = os.path.join(workdir, f"{name}.toml")
    with open(path, "w") as f:
        f.write(configs.dump_toml(doc))
    argv = [executable or os.path.join(RELEASE, binary), "--config", path]
    checked = subprocess.run([*argv, "--check"], capture_output=True, text=True, timeout=30)
    if checked.returncode != 0:
        raise RuntimeError(f"{name}: the bench config is refused:\n{checked.stdout}{checked.stderr}")
    return procs.start(name, argv, os.path.join(workdir, f"{name}.log"),
                       env={"RUST_LOG": os.environ.get("RUST_LOG", "info")})


def listen_port(doc):
    return int(doc["server"]["listen"].rsplit(":", 1)[1])


def time_to_ready(procs, workdir, binary, name, config_path, samples):
    """Milliseconds from spawning the process to its first /readyz 200, median of `samples`."""
    times = []
    for i in range(samples):
        start = time.monotonic()
        proc = procs.start(f"{name}-ready-{i}", [os.path.join(RELEASE, binary), "--config", config_path],
                           os.path.join(workdir, f"{name}-ready-{i}.log"),
                           env={"MANIFOLD_SERVER__LISTEN": f"127.0.0.1:{READY_PROBE_PORT}",
                                "MANIFOLD_ADMIN__LISTEN": "127.0.0.1:0"})
        try:
            wait_until(f"{name} ready", status_is(READY_PROBE_PORT, "/readyz"), 10, proc,
                       interval=0.001)
            times.append((time.monotonic() - start) * 1000)
        finally:
            procs.stop(proc)
    return statistics.median(times)


# ------------------------------------------------------------------ load

def wrk(contender, duration, connections, threads, workdir, quiet=()):
    """One measurement; afterwards waits until the contender and `quiet` (the backends) have
    finished the work the load left queued."""
    env = {**os.environ, "BENCH_METHOD": contender.method, "BENCH_BAD": contender.bad or "",
           "BENCH_HEADERS": "\n".join(f"{k}: {v}" for k, v in contender.headers.items())}
    if contender.body is not None:
        body_path = os.path.join(workdir, f"body-{contender.name.replace(' ', '_')}.txt")
        with open(body_path, "w") as f:
            f.write(contender.body)
        env["BENCH_BODY_FILE"] = body_path
    if contender.tokens:
        tokens_path = os.path.join(workdir, "tokens.txt")
        with open(tokens_path, "w") as f:
            f.write("\n".join(contender.tokens) + "\n")
        env["BENCH_TOKENS_FILE"] = tokens_path
    url = f"http://127.0.0.1:{contender.port}{contender.path}"
    user_before, system_before = cpu_split(contender.proc.pid)
    # What the answers cost the backends too (nothing extra when the contender IS them).
    backends = [p for p in quiet if p is not contender.proc]
    backends_before = sum(cpu_seconds(p.pid) for p in backends)
    out = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s", "--timeout", "5s",
         "-s", os.path.join(BENCH, "wrk", "bench.lua"), url],
        capture_output=True, text=True, errors="replace", env=env, timeout=duration + 60)
    user_after, system_after = cpu_split(contender.proc.pid)
    user, system = user_after - user_before, system_after - system_before
    cpu = user + system
    backends_cpu = sum(cpu_seconds(p.pid) for p in backends) - backends_before
    contender.peak_rss = max(contender.peak_rss, peak_rss_mib(contender.proc.pid))
    settle([contender.proc.pid, *(p.pid for p in quiet)])
    line = next((l for l in out.stdout.splitlines() if l.startswith("BENCH_JSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk against {contender.name} failed:\n{out.stdout}\n{out.stderr}")
    result = json.loads(line[len("BENCH_JSON "):])
    seconds = result["duration_us"] / 1e6
    errors = sum(result[k] for k in ("connect_errors", "read_errors", "write_errors",
                                     "status_errors", "timeouts", "bad_answers"))
    return {
        "rps": result["requests"] / seconds,
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "cpu_us": cpu * 1e6 / max(result["requests"], 1),
        "cpu_user_us": user * 1e6 / max(result["requests"], 1),
        "cpu_system_us": system * 1e6 / max(result["requests"], 1),
        "backends_cpu_us": backends_cpu * 1e6 / max(result["requests"], 1),
        "requests": result["requests"],
        "errors": errors,
        "bad": result["bad_answers"],
        "bad_sample": result["bad_sample"],
    }


def set_latency(ms):
    for port in BACKEND_PORTS:
        if ms:
            status, body = http_request(port, "POST", "/_chaos", body=json.dumps({"latency_ms": ms}),
                                        headers={"content-type": "application/json"})
        else:
            status, body = http_request(port, "DELETE", "/_chaos")
        if status not in (200, 204):
            raise RuntimeError(f"backend {port} refused the latency: {status} {body!r}")


def verify(contender, strict=True):
    """One checked request: the answer's body; with `strict=False` the problem (or None)."""
    headers = dict(contender.headers)
    if contender.tokens:
        headers["authorization"] = f"Bearer {contender.tokens[0]}"
    status, body = http_request(contender.port, contender.method, contender.path,
                                body=contender.body, headers=headers, timeout=10)
    problem = contender.check(status, body) if contender.check else (
        None if status == 200 else f"status {status}: {body[:300]!r}")
    if not strict:
        return problem
    if problem:
        raise RuntimeError(f"{contender.name} does not answer correctly: {problem}")
    return body


# ------------------------------------------------------------------ the run

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 2 s per scenario, 1 round, results in bench/results/")
    parser.add_argument("--duration", type=int, help="seconds per measurement (default 4)")
    parser.add_argument("--rounds", type=int, help="rounds of every scenario (default 3)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--latencies", default="0,20", help="backend latencies in ms (default 0,20)")
    parser.add_argument("--output", help="markdown report (default BENCHMARKS.md; "
                                         "--quick: bench/results/BENCHMARKS.quick.md)")
    parser.add_argument("--no-install", action="store_true", help="fail instead of installing")
    parser.add_argument("--no-build", action="store_true", help="use the existing release build")
    args = parser.parse_args()
    duration = args.duration or (2 if args.quick else 4)
    rounds = args.rounds or (1 if args.quick else 3)
    warmup = 1
    latencies = [int(x) for x in args.latencies.split(",") if x.strip()]
    output = args.output or (os.path.join(BENCH, "results", "BENCHMARKS.quick.md") if args.quick
                             else os.path.join(ROOT, "BENCHMARKS.md"))
    began = time.monotonic()
    load_before = os.getloadavg()

    install(args.no_install)
    build(args.no_build)

    workdir = os.path.join(BENCH, "results", time.strftime("run-%Y%m%d-%H%M%S"))
    os.makedirs(os.path.join(workdir, "nginx-tmp"), exist_ok=True)
    os.chmod(os.path.join(workdir, "nginx-tmp"), 0o777)
    # 1,000 connections and more, plus their upstream sockets, for every child.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))

    cache_cold = configs.load_toml(os.path.join(BENCH, "cache-cold.toml"))
    cache_warm = configs.load_toml(os.path.join(BENCH, "cache-warm.toml"))
    shipped = {name: configs.load_toml(os.path.join(ROOT, "config", f"{name}.toml"))
               for name in ("web", "mobile", "partner")}
    gateways = {
        # name: (binary, config)
        "web-plain": ("bff-web", configs.gateway(shipped["web"], 8181, False, proxy_auth_none=True)),
        "web-production": ("bff-web", configs.gateway(shipped["web"], 8182, True)),
        "mobile-plain": ("bff-mobile", configs.gateway(shipped["mobile"], 8281, False, overlay=cache_cold)),
        "mobile-production": ("bff-mobile", configs.gateway(shipped["mobile"], 8282, True, overlay=cache_cold)),
        "partner-plain": ("bff-partner", configs.gateway(shipped["partner"], 8381, False)),
        "partner-production": ("bff-partner", configs.gateway(shipped["partner"], 8382, True)),
        # The shipped runtime is work stealing; these measure thread-per-core beside it.
        "web-plain-per-core": ("bff-web", configs.gateway(shipped["web"], 8187, False, proxy_auth_none=True,
                                                          overlay=configs.THREAD_PER_CORE)),
        "mobile-plain-per-core": ("bff-mobile", configs.gateway(
            shipped["mobile"], 8287, False, overlay=configs.merge(cache_cold, configs.THREAD_PER_CORE))),
    }
    if cache_warm:
        gateways["mobile-plain-warm"] = ("bff-mobile", configs.gateway(shipped["mobile"], 8283, False, overlay=cache_warm))
        gateways["mobile-production-warm"] = ("bff-mobile", configs.gateway(shipped["mobile"], 8284, True, overlay=cache_warm))
    ports = [IDP_PORT, *BACKEND_PORTS, READY_PROBE_PORT, 8401, 8402, 8403, 8404, overload.PORT,
             overload.CAPACITY_PORT,
             *(listen_port(doc) for _, doc in gateways.values())]
    twice = sorted({p for p in ports if ports.count(p) > 1})
    if twice:
        sys.exit(f"ports given to two processes: {twice} (bench/run.py, bench/overload.py)")
    busy = [p for p in ports if not port_free(p)]
    if busy:
        sys.exit(f"ports in use: {busy} (is the demo or another benchmark running?)")

    procs = Processes()
    try:
        log(f"starting the sample backends; work dir {os.path.relpath(workdir, ROOT)}")
        backends = procs.start("backends", [os.path.join(RELEASE, "examples", "backends")],
                               os.path.join(workdir, "backends.log"))
        for port in (IDP_PORT, *BACKEND_PORTS):
            wait_until(f"backend {port}", status_is(port, "/healthz"), 30, backends)

        log("time to ready (process start to /readyz 200)")
        ready_ms = {}
        for name in ("web-plain", "mobile-production"):
            binary, doc = gateways[name]
            path = os.path.join(workdir, f"ready-{name}.toml")
            with open(path, "w") as f:
                f.write(configs.dump_toml(doc))
            ready_ms[name] = time_to_ready(procs, workdir, binary, name, path, 3 if args.quick else 7)

        log("starting the gateways and the peers")
        running = {name: start_gateway(procs, workdir, binary, name, doc)
                   for name, (binary, doc) in gateways.items()}
        with open(os.path.join(workdir, "nginx.conf"), "w") as f:
            f.write(configs.nginx(workdir, 8401, USERS_PORT))
        nginx = procs.start("nginx", [shutil.which("nginx") or "/usr/sbin/nginx", "-p", workdir,
                                      "-c", os.path.join(workdir, "nginx.conf"), "-e",
                                      os.path.join(workdir, "nginx-error.log")],
                            os.path.join(workdir, "nginx.log"))
        with open(os.path.join(workdir, "haproxy.cfg"), "w") as f:
            f.write(configs.haproxy(8402, USERS_PORT))
        haproxy = procs.start("haproxy", [shutil.which("haproxy") or "/usr/sbin/haproxy", "-db", "-f",
                                          os.path.join(workdir, "haproxy.cfg")],
                              os.path.join(workdir, "haproxy.log"))
        # The proxy route's floor: tokio and the kernel making a proxy's system calls, and
        # nothing else (bench/loadgen/src/bin/floor-proxy.rs); work stealing, as Manifold's
        # default.
        floor_proxy = procs.start("floor-proxy", [os.path.join(RELEASE, "floor-proxy"), "127.0.0.1:8405",
                                                  f"127.0.0.1:{USERS_PORT}", "work-stealing"],
                                  os.path.join(workdir, "floor-proxy.log"))
        node_env = {"NODE_ENV": "production", "WORKERS": str(os.cpu_count() or 1)}
        apollo = procs.start("apollo", ["node", "server.mjs"], os.path.join(workdir, "apollo.log"),
                             env={**node_env, "PORT": "8403", "APOLLO_HTTP_CACHE": "off"},
                             cwd=os.path.join(BENCH, "apollo"))
        apollo_warm = None
        if cache_warm:
            apollo_warm = procs.start("apollo-warm", ["node", "server.mjs"],
                                      os.path.join(workdir, "apollo-warm.log"),
                                      env={**node_env, "PORT": "8404", "APOLLO_HTTP_CACHE": "on"},
                                      cwd=os.path.join(BENCH, "apollo"))
        for name, proc in running.items():
            wait_until(f"{name} ready", status_is(listen_port(gateways[name][1]), "/readyz"), 30, proc)
        wait_until("nginx", status_is(8401, "/api/users/1"), 30, nginx)
        wait_until("haproxy", status_is(8402, "/api/users/1"), 30, haproxy)
        wait_until("floor-proxy", status_is(8405, "/api/users/1"), 30, floor_proxy)
        for proc, port in ((apollo, 8403), (apollo_warm, 8404)):
            if proc:
                wait_until(proc.name, lambda p=port: http_request(p, "GET", "/")[0] > 0, 30, proc)

        idle = {name: rss_mib(proc.pid) for name, proc in running.items()}
        idle.update({"nginx": rss_mib(nginx.pid), "haproxy": rss_mib(haproxy.pid),
                     "apollo": rss_mib(apollo.pid)})

        mobile_tokens = [mint("mobile", u) for u in range(1, USER_COUNT + 1)]
        web_token = mint("web", 42)
        graphql = dict(method="POST", path="/graphql", body=json.dumps({"query": HOME}),
                       headers={"content-type": "application/json"}, tokens=mobile_tokens,
                       check=graphql_ok, bad='"errors"')
        proxy_path = "/api/users/42"
        partner = dict(path="/v1/orders/o-42-1", headers={"x-api-key": "demo-partner-key"},
                       check=rest_ok, bad='"degraded":["')
        # Declared in config (`[[endpoints]]`): three services, two rounds of calls.
        overview = {**partner, "path": "/v1/customers/42/overview"}

        def mf(name):
            return running[name], listen_port(gateways[name][1])

        scenarios = {
            "proxy route": [
                Contender("backend direct (floor)", "floor", backends, USERS_PORT, "/users/42"),
                Contender("nginx", "peer", nginx, 8401, proxy_path),
                Contender("HAProxy", "peer", haproxy, 8402, proxy_path),
                Contender("tokio floor proxy", "peer", floor_proxy, 8405, proxy_path),
                Contender("Manifold plain", "manifold", *mf("web-plain"), proxy_path),
                Contender("Manifold production", "manifold", *mf("web-production"), proxy_path,
                          headers={"authorization": f"Bearer {web_token}"}),
                Contender("Manifold plain, thread-per-core", "manifold", *mf("web-plain-per-core"),
                          proxy_path),
            ],
            "mobile home, cold cache": [
                Contender("Apollo Server", "peer", apollo, 8403, **graphql),
                Contender("Manifold plain", "manifold", *mf("mobile-plain"), **graphql),
                Contender("Manifold production", "manifold", *mf("mobile-production"), **graphql),
                Contender("Manifold plain, thread-per-core", "manifold",
                          *mf("mobile-plain-per-core"), **graphql),
                # Compression on: the CPU it costs per answer (wrk cannot see GraphQL errors
                # inside a compressed body; the other contenders' runs check those).
                Contender("Manifold production, gzip", "manifold", *mf("mobile-production"),
                          **{**graphql, "headers": {**graphql["headers"], "accept-encoding": "gzip"},
                             "check": gzip_graphql_ok, "bad": None}),
            ],
            "partner merged order": [
                Contender("Manifold plain", "manifold", *mf("partner-plain"), **partner),
                Contender("Manifold production", "manifold", *mf("partner-production"), **partner),
            ],
            "partner customer overview (declared)": [
                Contender("Manifold plain", "manifold", *mf("partner-plain"), **overview),
                Contender("Manifold production", "manifold", *mf("partner-production"), **overview),
            ],
        }
        if cache_warm:
            scenarios["mobile home, warm cache"] = [
                Contender("Apollo Server (HTTP cache on)", "peer", apollo_warm, 8404, **graphql),
                Contender("Manifold plain", "manifold", *mf("mobile-plain-warm"), **graphql),
                Contender("Manifold production", "manifold", *mf("mobile-production-warm"), **graphql),
            ]
        order = ["proxy route", "mobile home, cold cache", "mobile home, warm cache",
                 "partner merged order", "partner customer overview (declared)"]
        scenarios = {k: scenarios[k] for k in order if k in scenarios}

        # The same query, the same answer: Apollo's home for user 1 equals Manifold's.
        answers = {c.name: json.loads(verify(c))["data"]
                   for c in scenarios["mobile home, cold cache"] if "gzip" not in c.name}
        wire_bytes = {c.name: len(verify(c)) for c in scenarios["mobile home, cold cache"]
                      if c.name.startswith("Manifold production")}
        if len({json.dumps(a, sort_keys=True) for a in answers.values()}) != 1:
            raise RuntimeError(f"the mobile home answers differ: {json.dumps(answers)[:2000]}")
        for contenders in scenarios.values():
            for c in contenders:
                verify(c)

        results = {}  # latency -> scenario -> contender name -> [run]
        findings = []  # what went wrong during the run, for the report
        for latency in latencies:
            set_latency(latency)
            log(f"backends at {latency} ms: warm-up")
            for contenders in scenarios.values():
                for c in contenders:
                    wrk(c, warmup, args.connections, os.cpu_count() or 1, workdir, [backends])
            per_latency = results.setdefault(latency, {})
            for r in range(rounds):
                log(f"backends at {latency} ms: round {r + 1} of {rounds}")
                for scenario, contenders in scenarios.items():
                    # Interleaved, and each round in another order, so drift hits all alike.
                    shift = r % len(contenders)
                    for c in contenders[shift:] + contenders[:shift]:
                        runs = per_latency.setdefault(scenario, {}).setdefault(c.name, [])
                        run_ = wrk(c, duration, args.connections, os.cpu_count() or 1, workdir,
                                   [backends])
                        runs.append(run_)
                        if run_["errors"]:
                            findings.append(
                                f"backends at {latency} ms, {scenario}, {c.name}, round {r + 1}: "
                                f"{run_['errors'] - run_['bad']} failed and {run_['bad']} wrong "
                                f"answers of {run_['requests']}"
                                + (f"; a wrong one: `{run_['bad_sample'][:300]}`" if run_["bad"] else ""))
            for scenario, contenders in scenarios.items():
                for c in contenders:
                    problem = verify(c, strict=False)  # still answering correctly after the load?
                    if problem:
                        findings.append(f"backends at {latency} ms, {scenario}, {c.name}: "
                                        f"after the load: {problem}")
        set_latency(0)

        this = sys.modules[__name__]
        overloaded = overload.start_manifold(this, procs, workdir)
        overload_rows = overload.scenario(this, workdir,
                                          [("Manifold plain", overloaded, overload.PORT,
                                            overload.manifold_capacity(this, procs, workdir)),
                                           ("Apollo Server", apollo, 8403, None)], [backends])
        procs.stop(overloaded)

        log("memory at 1,000 open connections")
        at_1000 = {}
        probes = [("web-plain", running["web-plain"], 8181, "/healthz"),
                  ("mobile-production", running["mobile-production"], 8282, "/healthz"),
                  ("partner-production", running["partner-production"], 8382, "/healthz"),
                  ("nginx", nginx, 8401, "/api/users/1"), ("haproxy", haproxy, 8402, "/api/users/1"),
                  ("apollo", apollo, 8403, "/")]
        for name, proc, port, path in probes:
            request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
            socks = open_connections(port, 1000, request)
            try:
                at_1000[name] = rss_mib(proc.pid)
            finally:
                for s in socks:
                    s.close()

        peaks = {}
        for contenders in scenarios.values():
            for c in contenders:
                peaks[(c.proc.name)] = max(peaks.get(c.proc.name, 0), c.peak_rss)
        meta = report.machine_and_versions(ROOT, os.path.join(BENCH, "apollo"))
        meta.update({"duration": duration, "rounds": rounds, "connections": args.connections,
                     "load_before": load_before, "load_after": os.getloadavg(),
                     "quick": args.quick, "wall_s": time.monotonic() - began,
                     "warm_cache": bool(cache_warm)})
        text = report.render(meta, results, scenarios, idle, at_1000, ready_ms, peaks, findings)
        text += ("\n## Compression\n\nThe mobile home answer on the wire: " +
                 ", ".join(f"{name} {n:,} bytes" for name, n in wire_bytes.items()) +
                 " (gzip at the fastest level; its CPU per query is the `gzip` row of the "
                 "mobile home tables).\n")
        text += "\n" + overload.render(overload_rows, time.strftime("%Y-%m-%d"), meta.get("commit", ""))
        text += report.kept_log(output)
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        with open(output, "w") as f:
            f.write(text)
        print(text)
        log(f"wrote {os.path.relpath(output, ROOT)} in {time.monotonic() - began:.0f} s")
    finally:
        procs.stop_all()


def _interrupted(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
