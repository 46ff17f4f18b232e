#!/usr/bin/env python3
"""Span export under load: the mobile home query at full speed with every trace exported.

`python3 bench/spans.py` (after `python3 bench/run.py` built the release binaries, or it
builds them) starts the backends, a local OTLP/HTTP collector (this script: it counts the
exports and their bytes and answers 200) and one Manifold bff-mobile with `[tracing]` at
ratio 1.0 and its shipped queue, then drives the home query with `bench/loadgen` (32
connections, 15 s) and reads the exporter's counters from `/metrics` once the queue has
drained. The tracing issue's target: at 1,000 home queries per second or more, either no
span dropped or a dropped-span counter equal to the gap (finished = exported + dropped +
failed). Replaces the "## Span export" section of BENCHMARKS.md.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import configs  # noqa: E402
import overload  # noqa: E402
from procs import Processes, settle, status_is, wait_until  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
RELEASE = os.path.join(ROOT, "target", "release")
HEADING = "## Span export"
PORT = 8286
ADMIN_PORT = 9286
CONNECTIONS = 32
SECONDS = 15


class Collector(BaseHTTPRequestHandler):
    """Counts OTLP exports and their bytes; answers an empty ExportTraceServiceResponse."""
    exports = 0
    bytes = 0
    lock = threading.Lock()

    def do_POST(self):  # noqa: N802 (http.server's name)
        length = int(self.headers.get("content-length", 0))
        body = self.rfile.read(length)
        with Collector.lock:
            Collector.exports += 1
            Collector.bytes += len(body)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def counters(admin_port):
    """The exporter's counters from the gateway's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for name in ("finished", "exported", "dropped", "failed"):
        m = re.search(rf"^manifold_spans_{name}_total (\d+)", text, re.M)
        out[name] = int(m.group(1)) if m else 0
    return out


def drained(admin, deadline_s=30):
    """The counters once every finished span is accounted for (or after `deadline_s`)."""
    deadline = time.monotonic() + deadline_s
    while True:
        now = counters(admin)
        if now["exported"] + now["dropped"] + now["failed"] == now["finished"]:
            return now
        if time.monotonic() > deadline:
            return now
        time.sleep(0.2)


def measure(run, procs, workdir, collector_port):
    shipped = configs.load_toml(os.path.join(ROOT, "config", "mobile.toml"))
    cold = configs.load_toml(os.path.join(BENCH, "cache-cold.toml"))
    doc = configs.gateway(shipped, PORT, False, overlay=cold)
    doc["tracing"] = {"otlp_endpoint": f"http://127.0.0.1:{collector_port}", "sample_ratio": 1.0}
    doc["admin"]["listen"] = f"127.0.0.1:{ADMIN_PORT}"
    gateway = run.start_gateway(procs, workdir, "bff-mobile", "mobile-spans", doc)
    wait_until("mobile-spans ready", status_is(PORT, "/readyz"), 30, gateway)
    admin = ADMIN_PORT
    tokens = [run.mint("mobile", u) for u in range(1, run.USER_COUNT + 1)]
    graphql = {"path": "/graphql", "body": json.dumps({"query": run.HOME}),
               "headers": {"content-type": "application/json"}, "tokens": tokens,
               "bad": '"errors"'}
    run.set_latency(0)
    overload.loadgen(PORT, graphql, 4, 2, workdir)  # warm-up
    before = drained(admin)
    result = overload.loadgen(PORT, graphql, CONNECTIONS, SECONDS, workdir)
    settle([gateway.pid])
    after = drained(admin)
    ok = result["by_status"].get("200", {}).get("count", 0)
    delta = {k: after[k] - before[k] for k in after}
    return {"rps": ok / result["seconds"], "queries": ok, "spans": delta,
            "per_query": delta["finished"] / ok if ok else 0,
            "exports": Collector.exports, "mib": Collector.bytes / 2**20,
            "balanced": after["finished"] == after["exported"] + after["dropped"] + after["failed"]}


def render(r, when, commit):
    s = r["spans"]
    met = r["rps"] >= 1000 and r["balanced"]
    return "\n".join([
        HEADING, "",
        f"Run {when}, commit {commit}: the mobile home query, {CONNECTIONS} connections for "
        f"{SECONDS} s, every trace exported (ratio 1.0, the shipped queue) to a local collector "
        "(`python3 bench/spans.py`).", "",
        "| home queries /s | spans per query | finished | exported | dropped | failed | "
        "exports | MiB sent (gzip) |", "|--:|--:|--:|--:|--:|--:|--:|--:|",
        f"| {r['rps']:.0f} | {r['per_query']:.1f} | {s['finished']} | {s['exported']} | "
        f"{s['dropped']} | {s['failed']} | {r['exports']} | {r['mib']:.1f} |", "",
        f"- at 1,000 home queries per second or more, no dropped span or a dropped-span counter "
        f"equal to the gap: **{'met' if met else 'NOT met'}** ({r['rps']:.0f} queries/s; "
        f"finished {s['finished']} = exported {s['exported']} + dropped {s['dropped']} + "
        f"failed {s['failed']}: {'yes' if r['balanced'] else 'no'})", ""])


def main():
    import run  # noqa: PLC0415 (the full benchmark's helpers: install, build, tokens)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-install", action="store_true")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--output", default=os.path.join(ROOT, "BENCHMARKS.md"))
    args = parser.parse_args()
    run.install(args.no_install)
    run.build(args.no_build)
    workdir = os.path.join(BENCH, "results", time.strftime("spans-%Y%m%d-%H%M%S"))
    os.makedirs(workdir, exist_ok=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    procs = Processes()
    try:
        backends = procs.start("backends", [os.path.join(RELEASE, "examples", "backends")],
                               os.path.join(workdir, "backends.log"))
        for port in (run.IDP_PORT, *run.BACKEND_PORTS):
            wait_until(f"backend {port}", status_is(port, "/healthz"), 30, backends)
        result = measure(run, procs, workdir, server.server_address[1])
    finally:
        procs.stop_all()
        server.shutdown()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT).stdout.strip()
    section = render(result, time.strftime("%Y-%m-%d"), commit)
    print(section)
    overload.replace_section(args.output, section, HEADING)


if __name__ == "__main__":
    import run  # noqa: E402
    signal.signal(signal.SIGTERM, run._interrupted)
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
