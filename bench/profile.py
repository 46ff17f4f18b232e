#!/usr/bin/env python3
"""One gateway scenario under load, for working on its hot path:
`python3 bench/profile.py proxy-plain [--perf]`.

Starts the sample backends and ONE gateway (the same bench configs as `run.py`), drives
`--duration` seconds of wrk load at it, and prints req/s, p50/p99 and the CPU per request of
the gateway AND of the backends (so a change that moves work between them shows). With
`--perf`, the gateway runs under `perf record` for the measurement and the hottest symbols
are printed (flat, self time); `--callgrind` instead runs the gateway under valgrind's
callgrind for a fixed number of requests and prints instruction counts per request, which
are repeatable on a busy machine; `--syscalls` counts the gateway's system calls a request
(strace, which slows it: the counts hold, the timings do not). Every load run also prints
the gateway's context switches a request, voluntary (it waited: for I/O, a lock) and
involuntary (the kernel preempted it), summed over its threads, and its page faults a request
(minor: a page touched first, or again after the allocator returned it to the kernel). Uses
the existing release build (`cargo build --release --workspace` first), 127.0.0.1 only, and
stops everything it started.
"""

import argparse
import hashlib
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import configs  # noqa: E402
import run  # noqa: E402
from procs import Processes, status_is, wait_until  # noqa: E402

SCENARIOS = {
    # name: (binary, shipped config, production?, port, contender kwargs builder)
    "proxy-plain": ("bff-web", "web", False, 8181),
    "proxy-production": ("bff-web", "web", True, 8182),
    "home-plain": ("bff-mobile", "mobile", False, 8281),
    "home-production": ("bff-mobile", "mobile", True, 8282),
    # The home query as a persisted operation: GET by its SHA-256 (APQ), registered first.
    "home-persisted": ("bff-mobile", "mobile", False, 8283),
    # bff-web's orders page (no peer: measured for work on bff-web's GraphQL path).
    "orders-plain": ("bff-web", "web", False, 8181),
    "orders-production": ("bff-web", "web", True, 8182),
    "partner-plain": ("bff-partner", "partner", False, 8381),
    "partner-production": ("bff-partner", "partner", True, 8382),
    # The customer overview declared in config (`compose`): three services, two rounds.
    "overview-plain": ("bff-partner", "partner", False, 8381),
    "overview-production": ("bff-partner", "partner", True, 8382),
}


# The web client's orders page: the viewer's profile, ten orders with their lines, each
# line's product (batched over the page) with its review summary, each order's shipment.
WEB_ORDERS = """query Orders($first: Int!) { viewer {
  id
  profile { id name email locale avatar { small { url } large { url width height } } }
  orders(first: $first) {
    pageInfo { hasNextPage endCursor }
    edges { cursor node {
      id status placedAt total { amount currency } itemCount
      items {
        productId title quantity unitPrice { amount currency }
        product { id title price { amount currency } images { thumb { url } } reviewSummary { average count } }
      }
      shipment { carrier status trackingNumber eta }
    } }
  }
} }"""


def web_orders_ok(status, body):
    if status != 200:
        return f"status {status}: {body[:300]!r}"
    doc = json.loads(body)
    edges = (((doc.get("data") or {}).get("viewer") or {}).get("orders") or {}).get("edges")
    if doc.get("errors") or not edges:
        return f"GraphQL errors or no orders: {body[:300]!r}"
    return None


def contender(name, proc, port):
    if name.startswith("proxy"):
        headers = {}
        if name.endswith("production"):
            headers["authorization"] = f"Bearer {run.mint('web', 42)}"
        return run.Contender(name, "manifold", proc, port, "/api/users/42", headers=headers)
    if name == "home-persisted":
        tokens = [run.mint("mobile", u) for u in range(1, run.USER_COUNT + 1)]
        return run.Contender(name, "manifold", proc, port, method="GET", path=persisted_path(),
                             tokens=tokens, check=run.graphql_ok, bad='"errors"')
    if name.startswith("orders"):
        tokens = [run.mint("web", u) for u in range(1, run.USER_COUNT + 1)]
        return run.Contender(name, "manifold", proc, port, method="POST", path="/graphql",
                             body=json.dumps({"query": WEB_ORDERS, "variables": {"first": 10}}),
                             headers={"content-type": "application/json"}, tokens=tokens,
                             check=web_orders_ok, bad='"errors"')
    if name.startswith("home"):
        tokens = [run.mint("mobile", u) for u in range(1, run.USER_COUNT + 1)]
        return run.Contender(name, "manifold", proc, port, method="POST", path="/graphql",
                             body=json.dumps({"query": run.HOME}),
                             headers={"content-type": "application/json"}, tokens=tokens,
                             check=run.graphql_ok, bad='"errors"')
    path = "/v1/customers/42/overview" if name.startswith("overview") else "/v1/orders/o-42-1"
    return run.Contender(name, "manifold", proc, port, path,
                         headers={"x-api-key": "demo-partner-key"}, check=run.rest_ok,
                         bad='"degraded":["')


def persisted_extensions():
    digest = hashlib.sha256(run.HOME.encode()).hexdigest()
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


def persisted_path():
    """`GET /graphql` with only the home query's hash, as Apollo's APQ link sends it."""
    query = urllib.parse.urlencode({"operationName": "Home",
                                    "extensions": json.dumps(persisted_extensions(), separators=(",", ":"))})
    return f"/graphql?{query}"


def register_persisted(c):
    """The home query sent once with its hash, so the GETs by hash find it."""
    status, body = run.http_request(
        c.port, "POST", "/graphql",
        body=json.dumps({"query": run.HOME, "extensions": persisted_extensions()}),
        headers={"content-type": "application/json", "authorization": f"Bearer {c.tokens[0]}"},
        timeout=30)
    problem = run.graphql_ok(status, body)
    if problem:
        raise RuntimeError(f"registering the persisted home query failed: {problem}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--latency", type=int, default=0, help="backend latency in ms")
    parser.add_argument("--perf", action="store_true", help="perf record the gateway")
    parser.add_argument("--call-graph", default="fp", metavar="MODE",
                        help="perf's call-graph mode: fp (default) or dwarf (callers through "
                             "code built without frame pointers; larger, slower to report)")
    parser.add_argument("--syscalls", action="store_true",
                        help="count the gateway's system calls per request (strace -c; slows it)")
    parser.add_argument("--perf-backends", action="store_true",
                        help="perf record the sample backends instead of the gateway")
    parser.add_argument("--callgrind", type=int, metavar="N",
                        help="run the gateway under callgrind for N requests (4 connections)")
    parser.add_argument("--top", type=int, default=45, help="symbols to print")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, profiles)")
    parser.add_argument("--runtime", choices=("work-stealing", "thread-per-core"),
                        help="the gateway's server.runtime (default: the shipped one)")
    parser.add_argument("--gateway-binary", metavar="PATH",
                        help="run this gateway executable instead of the release build's "
                             "(another build of the same BFF: `bench/ab.py` compares two)")
    args = parser.parse_args()
    if args.syscalls and (args.perf or args.perf_backends or args.callgrind):
        parser.error("--syscalls runs alone (strace and perf or callgrind would measure each other)")

    binary, shipped_name, production, port = SCENARIOS[args.scenario]
    shipped = configs.load_toml(os.path.join(run.ROOT, "config", f"{shipped_name}.toml"))
    overlay = configs.load_toml(os.path.join(run.BENCH, "cache-cold.toml")) if shipped_name == "mobile" else None
    doc = configs.gateway(shipped, port, production, proxy_auth_none=not production, overlay=overlay)
    if args.runtime:
        doc.setdefault("server", {})["runtime"] = args.runtime
    workdir = tempfile.mkdtemp(prefix="manifold-profile-")
    procs = Processes()
    try:
        backends = procs.start("backends", [os.path.join(run.RELEASE, "examples", "backends")],
                               os.path.join(workdir, "backends.log"))
        for p in (run.IDP_PORT, *run.BACKEND_PORTS):
            wait_until(f"backend {p}", status_is(p, "/healthz"), 30, backends)
        run.set_latency(args.latency)
        if args.callgrind:
            return callgrind(args, procs, workdir, binary, doc, port, backends)
        gateway = run.start_gateway(procs, workdir, binary, args.scenario, doc,
                                    executable=args.gateway_binary)
        wait_until("gateway ready", status_is(port, "/readyz"), 30, gateway)
        c = contender(args.scenario, gateway, port)
        if args.scenario == "home-persisted":
            register_persisted(c)
        run.verify(c)
        run.wrk(c, 1, args.connections, min(os.cpu_count() or 1, args.connections), workdir,
                [backends])  # warm-up
        perf = None  # the tracer running beside the load: perf record, or strace -c
        if args.perf or args.perf_backends:
            target = backends if args.perf_backends else gateway
            perf = subprocess.Popen(["perf", "record", "--call-graph", args.call_graph, "-F", "1999", "-o",
                                     os.path.join(workdir, "perf.data"), "-p", str(target.pid)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        elif args.syscalls:
            # strace says "Process N attached" (on stderr) once it counts.
            perf = subprocess.Popen(["strace", "-c", "-f", "-o", os.path.join(workdir, "strace.txt"),
                                     "-p", str(gateway.pid)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            perf.stderr.readline()
        threads = min(os.cpu_count() or 1, args.connections)
        switched = context_switches(gateway.pid)
        faulted = page_faults(gateway.pid)
        result = run.wrk(c, args.duration, args.connections, threads, workdir, [backends])
        switched = [after - before for before, after in zip(switched, context_switches(gateway.pid))]
        faulted = [after - before for before, after in zip(faulted, page_faults(gateway.pid))]
        if perf:
            perf.send_signal(2)
            perf.wait(30)
        print(f"{args.scenario}, backends at {args.latency} ms, {args.connections} connections, "
              f"{args.duration} s: {result['rps']:,.0f} req/s, p50 {result['p50_ms']:.2f} ms, "
              f"p99 {result['p99_ms']:.2f} ms, failed {result['errors']}")
        print(f"CPU per request: gateway {result['cpu_us']:.1f} us (user {result['cpu_user_us']:.1f}, "
              f"system {result['cpu_system_us']:.1f}), backends {result['backends_cpu_us']:.1f} us")
        print(f"context switches per request (gateway): voluntary {switched[0] / result['requests']:.2f}, "
              f"involuntary {switched[1] / result['requests']:.2f}")
        print(f"page faults per request (gateway): minor {faulted[0] / result['requests']:.3f}, "
              f"major {faulted[1] / result['requests']:.3f}")
        if args.syscalls:
            # strace -c's table: % time, seconds, usecs/call, calls, [errors,] syscall.
            with open(os.path.join(workdir, "strace.txt")) as f:
                for line in f:
                    fields = line.split()
                    if len(fields) >= 5 and fields[-1].isidentifier() and fields[3].isdigit():
                        print(f"  {fields[-1]:<16} {int(fields[3]) / result['requests']:8.2f} a request")
        elif perf:
            report = subprocess.run(["perf", "report", "-i", os.path.join(workdir, "perf.data"),
                                     "--no-children", "--sort", "symbol", "--stdio", "--percent-limit", "0.4"],
                                    capture_output=True, text=True, timeout=300)
            lines = [re.sub(r"\s+-\s+-\s*$", "", l).rstrip() for l in report.stdout.splitlines()
                     if l.strip() and not l.startswith("#")]
            print("\n".join(lines[:args.top]))
    finally:
        procs.stop_all()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def context_switches(pid):
    """The voluntary and involuntary context switches of every thread of `pid` so far (a
    process's own `status` counts its first thread only)."""
    counts = [0, 0]
    task_dir = f"/proc/{pid}/task"
    for tid in os.listdir(task_dir):
        try:
            with open(os.path.join(task_dir, tid, "status")) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        counts[0] += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        counts[1] += int(line.split()[1])
        except FileNotFoundError:  # a thread that ended meanwhile
            pass
    return counts


def page_faults(pid):
    """The minor and major page faults of `pid` so far, all its threads (the kernel sums them
    in the process's `stat`): a minor fault is a page the allocator gave back to the kernel
    and touched again, or touched for the first time."""
    with open(f"/proc/{pid}/stat") as f:
        # After the command's closing parenthesis: state is field 3; minflt 10, majflt 12.
        fields = f.read().rsplit(")", 1)[1].split()
    return [int(fields[7]), int(fields[9])]


def callgrind(args, procs, workdir, binary, doc, port, backends):
    """Instructions per request: the gateway under callgrind, a warm-up, then N requests."""
    path = os.path.join(workdir, "gateway.toml")
    with open(path, "w") as f:
        f.write(configs.dump_toml(doc))
    out = os.path.join(workdir, "callgrind.out")
    gateway = procs.start("gateway", ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                                      "--instr-atstart=no",
                                      args.gateway_binary or os.path.join(run.RELEASE, binary),
                                      "--config", path], os.path.join(workdir, "gateway.log"))
    wait_until("gateway ready", status_is(port, "/readyz"), 120, gateway)
    c = contender(args.scenario, gateway, port)
    if args.scenario == "home-persisted":
        register_persisted(c)
    # One keep-alive connection, as the load generator uses: connection setup is not counted.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(i):
        headers = dict(c.headers)
        if c.tokens:
            headers["authorization"] = f"Bearer {c.tokens[i % len(c.tokens)]}"
        # The head wrk sends: no `Accept-Encoding` (http.client would add `identity`).
        conn.putrequest(c.method, c.path, skip_accept_encoding=True)
        body = c.body.encode() if isinstance(c.body, str) else c.body
        if body is not None:
            headers["content-length"] = str(len(body))
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"request {i}: status {response.status}")

    for i in range(max(50, len(c.tokens or ()))):  # warm-up: pools, caches, every token verified once
        request(i)
    subprocess.run(["callgrind_control", "-i", "on", str(gateway.pid)], check=True,
                   capture_output=True, timeout=60)
    for i in range(args.callgrind):
        request(i)
    subprocess.run(["callgrind_control", "-i", "off", str(gateway.pid)], check=True,
                   capture_output=True, timeout=60)
    subprocess.run(["callgrind_control", "-d", str(gateway.pid)], check=True,
                   capture_output=True, timeout=60)
    dumps = sorted(p for p in os.listdir(workdir) if p.startswith("callgrind.out"))
    total = 0
    annotated = []
    for d in dumps:
        text = subprocess.run(["callgrind_annotate", "--inclusive=no", os.path.join(workdir, d)],
                              capture_output=True, text=True, timeout=300).stdout
        for line in text.splitlines():
            if "PROGRAM TOTALS" in line:
                total += int(line.split()[0].replace(",", ""))  # noqa
        annotated.append(text)
    print(f"{args.scenario}: {total / args.callgrind:,.0f} instructions per request "
          f"({args.callgrind} requests, sequential)")
    for text in annotated:
        body = text.split("file:function", 1)[-1].splitlines()[1:args.top + 1]
        print("\n".join(body))


if __name__ == "__main__":
    main()
