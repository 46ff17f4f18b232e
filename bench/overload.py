#!/usr/bin/env python3
"""The overload scenario: about ten times the capacity on the mobile home query for 15 s.

Part of `python3 bench/run.py`; `python3 bench/overload.py` runs it alone (backends, the plain
mobile gateway and the Apollo Server peer) and replaces the "## Overload" section of
BENCHMARKS.md. The load generator is `bench/loadgen` (closed loop, like wrk, but with
latencies per status, so refusals and admitted answers are measured apart).

For each contender: the unloaded p99 (4 connections), its capacity (answers per second at 64
connections, where throughput is already saturated on 2 cores), then ten times that capacity
offered for 15 s in an open loop over up to 800 connections, with the resident memory sampled
throughout. Open, because "ten times the capacity" is an arrival rate: requests come whether
or not earlier ones were answered, and each one's latency counts from when it was due (time
spent waiting for a free connection included). A closed loop cannot offer a fixed multiple:
each refusal sends the next request at once, so the offered rate is whatever the gateway can
refuse, and by Little's law 800 connections answered within 5 ms would take 160,000 answers
a second. Targets (the edge-hardening issue): excess answered
503 within 5 ms at p99, admitted answers' p99 at most 2x the unloaded p99, RSS at most 2x
idle plus 50 MB, no errors inside admitted answers.

Manifold runs as an instance of its own (port 8285: the plain mobile config with its JSON
access log on, as in production), so the gateway's own view of each request (the access
line's `latency_ms`, from the request's arrival in the app to its answer) is measured beside
the client's (which adds the time the request waited for a core: with 800 connections on
two cores shared with the load generator, most of it).
"""

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import configs  # noqa: E402
from procs import Processes, rss_mib, settle, status_is, wait_until  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
RELEASE = os.path.join(ROOT, "target", "release")
UNLOADED_CONNECTIONS = 4
CAPACITY_CONNECTIONS = 64
OVERLOAD_FACTOR = 10
OVERLOAD_CONNECTIONS = 800
OVERLOAD_SECONDS = 15
HEADING = "## Overload"
PORT = 8285
CAPACITY_PORT = 8286


def start_manifold(run, procs, workdir, shedding=True, port=PORT, runtime=None):
    """The Manifold instance the scenario loads: plain mobile config, JSON access log on,
    admission control as shipped (or never shedding, to measure the capacity), the shipped
    `server.runtime` unless `runtime` names another."""
    shipped = configs.load_toml(os.path.join(ROOT, "config", "mobile.toml"))
    cold = configs.load_toml(os.path.join(BENCH, "cache-cold.toml"))
    doc = configs.gateway(shipped, port, False, overlay=cold)
    doc["log"].update({"access_log": True, "format": "json"})
    if runtime:
        doc.setdefault("server", {})["runtime"] = runtime
    if shedding:
        for key in configs.NO_SHEDDING:
            doc["admission"].pop(key)
    name = "mobile-overload" if shedding else "mobile-capacity"
    gateway = run.start_gateway(procs, workdir, "bff-mobile", name, doc)
    wait_until(f"{name} ready", status_is(port, "/readyz"), 30, gateway)
    return gateway


def access_latencies(path, start):
    """From the JSON access lines written after byte `start` of `path`: the gateway's
    latencies (ms) of 200 answers and of shed requests."""
    ok, shed = [], []
    with open(path, "rb") as f:
        f.seek(start)
        for line in f:
            if b'"manifold::access"' not in line:
                continue
            entry = json.loads(line)
            if entry.get("status") == 200:
                ok.append(entry["latency_ms"])
            elif entry.get("admission") == "shed" and "latency_ms" in entry:
                shed.append(entry["latency_ms"])
    return sorted(ok), sorted(shed)


def p99(values):
    return values[min(len(values) - 1, int(len(values) * 0.99))] if values else None


def loadgen(port, graphql, connections, seconds, workdir, rate=None):
    """One run of `bench/loadgen` (closed loop, or open at `rate` per second); its report."""
    body_path = os.path.join(workdir, "overload-body.json")
    with open(body_path, "w") as f:
        f.write(graphql["body"])
    tokens_path = os.path.join(workdir, "overload-tokens.txt")
    with open(tokens_path, "w") as f:
        f.write("\n".join(graphql["tokens"]) + "\n")
    argv = [os.path.join(RELEASE, "loadgen"), f"http://127.0.0.1:{port}{graphql['path']}",
            "--connections", str(connections), "--duration", str(seconds), "--method", "POST",
            "--body-file", body_path, "--tokens-file", tokens_path, "--bad", graphql["bad"],
            "--timeout", "10"] + (["--rate", f"{rate:.0f}"] if rate else [])
    for name, value in graphql["headers"].items():
        argv += ["--header", f"{name}: {value}"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed: {out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


class RssSampler:
    """The largest resident set of a process group while it runs, sampled every 100 ms."""

    def __init__(self, pid):
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mib(self.pid))
            self._stop.wait(0.1)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def measure(name, proc, port, workdir, graphql, quiet, capacity_on=None):
    """One contender: unloaded, its capacity, then overloaded. Returns the row of the report.
    `capacity_on`: a function starting the instance to measure the capacity on and
    stopping it: (start, stop) (Manifold's without shedding, so that shedding cannot make
    the capacity smaller); else the contender itself."""
    def run(connections, seconds, rate=None, on=(proc, port)):
        result = loadgen(on[1], graphql, connections, seconds, workdir, rate)
        settle([on[0].pid, *(q.pid for q in quiet)])
        return result

    if capacity_on:
        start, stop = capacity_on
        instance = start()
        run(UNLOADED_CONNECTIONS, 2, on=instance)  # warm-up
        saturated = run(CAPACITY_CONNECTIONS, 5, on=instance)
        stop(instance[0])
    else:
        saturated = None

    run(UNLOADED_CONNECTIONS, 2)  # warm-up
    at = os.path.getsize(proc.log_path)
    unloaded = run(UNLOADED_CONNECTIONS, 5)
    unloaded_ok, _ = access_latencies(proc.log_path, at)
    idle = rss_mib(proc.pid)
    saturated = saturated or run(CAPACITY_CONNECTIONS, 5)
    capacity = saturated["by_status"].get("200", {}).get("count", 0) / saturated["seconds"]
    at = os.path.getsize(proc.log_path)
    with RssSampler(proc.pid) as rss:
        loaded = run(OVERLOAD_CONNECTIONS, OVERLOAD_SECONDS, OVERLOAD_FACTOR * capacity)
    loaded_ok, loaded_shed = access_latencies(proc.log_path, at)
    ok = loaded["by_status"].get("200", {})
    shed = loaded["by_status"].get("503", {})
    other = {s: v["count"] for s, v in loaded["by_status"].items() if s not in ("200", "503")}
    return {
        "name": name,
        "unloaded_p99": unloaded["by_status"].get("200", {}).get("p99_ms"),
        "unloaded_rps": unloaded["requests"] / unloaded["seconds"],
        "capacity": capacity,
        "offered": loaded["rate"],
        "requests": loaded["requests"],
        "seconds": loaded["seconds"],
        "ok": ok.get("count", 0),
        "ok_rps": ok.get("count", 0) / loaded["seconds"],
        "ok_p50": ok.get("p50_ms"),
        "ok_p99": ok.get("p99_ms"),
        "shed": shed.get("count", 0),
        "shed_p99": shed.get("p99_ms"),
        "other": other,
        "errors": loaded["connect_errors"] + loaded["io_errors"] + loaded["timeouts"],
        "timeouts": loaded["timeouts"],
        "unsent": loaded.get("unsent", 0),
        "bad": loaded["bad"],
        "bad_sample": loaded["bad_sample"],
        "idle_mib": idle,
        "peak_mib": rss.peak,
        # The gateway's own view (access lines; none for a peer without them).
        "gw_unloaded_p99": p99(unloaded_ok),
        "gw_ok_p99": p99(loaded_ok),
        "gw_shed_p99": p99(loaded_shed),
    }


def _f(x, digits=1):
    return "-" if x is None else f"{x:.{digits}f}"


def render(rows, when, commit):
    out = [HEADING, "",
           f"Run {when}, commit {commit}: the mobile home query offered at {OVERLOAD_FACTOR}x "
           f"each contender's capacity (its answers per second at {CAPACITY_CONNECTIONS} "
           f"connections) for {OVERLOAD_SECONDS} s, open loop over up to "
           f"{OVERLOAD_CONNECTIONS} connections, latency counted from when each request was "
           f"due (backends at 0 ms, rate limits off), after {UNLOADED_CONNECTIONS} connections "
           "for the unloaded p99 (`python3 bench/overload.py`, load generator `bench/loadgen`). "
           "\"Never sent\": due within the run, but no connection was free before its end.",
           "",
           "| contender | unloaded p99 ms | capacity /s | offered /s | answered 200 /s | 200 p50 ms | "
           "200 p99 ms | 503 | 503 p99 ms | other statuses | errors (timeouts) | never sent | "
           "200 with errors | RSS idle -> peak MiB |",
           "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|"]
    for r in rows:
        other = ", ".join(f"{s}: {n}" for s, n in r["other"].items()) or "-"
        out.append(
            f"| {r['name']} | {_f(r['unloaded_p99'], 2)} | {r['capacity']:.0f} | "
            f"{r['offered']:.0f} | {r['ok_rps']:.0f} | {_f(r['ok_p50'])} | "
            f"{_f(r['ok_p99'])} | {r['shed']} | {_f(r['shed_p99'], 2)} | {other} | "
            f"{r['errors']} ({r['timeouts']}) | {r['unsent']} | {r['bad']} | {r['idle_mib']:.0f} -> {r['peak_mib']:.0f} |")
    out += ["", "The gateway's own view (its access lines: from the request's arrival in the app to "
            "its answer, without the time it waited for a core):", "",
            "| contender | unloaded 200 p99 ms | 200 p99 ms | 503 p99 ms |", "|---|--:|--:|--:|"]
    for r in rows:
        if r["gw_ok_p99"] is not None:
            out.append(f"| {r['name']} | {_f(r['gw_unloaded_p99'], 2)} | {_f(r['gw_ok_p99'], 2)} | "
                       f"{_f(r['gw_shed_p99'], 2)} |")
    out += ["", "Targets (Manifold, as the clients measure them):", ""]
    m = next((r for r in rows if r["name"].startswith("Manifold")), None)
    if m:
        checks = [
            ("excess answered 503 within 5 ms at p99",
             m["shed"] > 0 and m["shed_p99"] is not None and m["shed_p99"] <= 5.0,
             f"{m['shed']} answered 503, p99 {_f(m['shed_p99'], 2)} ms"),
            ("admitted p99 at most 2x the unloaded p99",
             m["ok_p99"] is not None and m["unloaded_p99"] is not None
             and m["ok_p99"] <= 2 * m["unloaded_p99"],
             f"{_f(m['ok_p99'], 2)} ms against 2 x {_f(m['unloaded_p99'], 2)} ms"),
            ("RSS at most 2x idle + 50 MB", m["peak_mib"] <= 2 * m["idle_mib"] + 50,
             f"peak {m['peak_mib']:.0f} MiB, idle {m['idle_mib']:.0f} MiB"),
            ("no errors inside admitted answers", m["bad"] == 0,
             f"{m['bad']} of {m['ok']}" + (f": `{m['bad_sample'][:200]}`" if m["bad"] else "")),
        ]
        for what, met, measured in checks:
            out.append(f"- {what}: **{'met' if met else 'NOT met'}** ({measured})")
    out.append("")
    return "\n".join(out)


def replace_section(path, section, heading=HEADING):
    """Puts `section` in place of the report's section under `heading` (before the
    optimisation log when there is none yet)."""
    with open(path) as f:
        text = f.read()
    at = text.find(heading + "\n")
    if at >= 0:
        end = text.find("\n## ", at + len(heading))
        text = text[:at] + section + (text[end + 1:] if end >= 0 else "")
    else:
        log_at = text.find("## Optimisation log")
        text = text[:log_at] + section + "\n" + text[log_at:] if log_at >= 0 else text + "\n" + section
    with open(path, "w") as f:
        f.write(text)


def main():
    import run  # noqa: PLC0415 (the full benchmark's helpers: install, build, tokens)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-install", action="store_true")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--output", default=os.path.join(ROOT, "BENCHMARKS.md"))
    parser.add_argument("--manifold-only", action="store_true",
                        help="skip the Apollo Server peer and print the section only")
    parser.add_argument("--runtime", choices=("work-stealing", "thread-per-core"),
                        help="Manifold's server.runtime (default: the shipped one)")
    args = parser.parse_args()
    run.install(args.no_install)
    run.build(args.no_build)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    workdir = os.path.join(BENCH, "results", time.strftime("overload-%Y%m%d-%H%M%S"))
    os.makedirs(workdir, exist_ok=True)
    procs = Processes()
    try:
        backends = procs.start("backends", [os.path.join(RELEASE, "examples", "backends")],
                               os.path.join(workdir, "backends.log"))
        for port in (run.IDP_PORT, *run.BACKEND_PORTS):
            wait_until(f"backend {port}", status_is(port, "/healthz"), 30, backends)
        gateway = start_manifold(run, procs, workdir, runtime=args.runtime)
        capacity = manifold_capacity(run, procs, workdir, args.runtime)
        contenders = [("Manifold plain", gateway, PORT, capacity)]
        if args.manifold_only:
            rows = scenario(run, workdir, contenders, [backends])
            print(render(rows, time.strftime("%Y-%m-%d"), "-"))
            return
        apollo = procs.start("apollo", ["node", "server.mjs"], os.path.join(workdir, "apollo.log"),
                             env={"NODE_ENV": "production", "WORKERS": str(os.cpu_count() or 1),
                                  "PORT": "8403", "APOLLO_HTTP_CACHE": "off"},
                             cwd=os.path.join(BENCH, "apollo"))
        wait_until("apollo", lambda: run.http_request(8403, "GET", "/")[0] > 0, 30, apollo)
        rows = scenario(run, workdir, contenders + [("Apollo Server", apollo, 8403, None)], [backends])
    finally:
        procs.stop_all()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT).stdout.strip()
    section = render(rows, time.strftime("%Y-%m-%d"), commit)
    print(section)
    replace_section(args.output, section)


def manifold_capacity(run, procs, workdir, runtime=None):
    """`capacity_on` for Manifold: an instance like the loaded one that never sheds."""
    def start():
        proc = start_manifold(run, procs, workdir, shedding=False, port=CAPACITY_PORT,
                              runtime=runtime)
        return proc, CAPACITY_PORT
    return start, procs.stop


def scenario(run, workdir, contenders, quiet):
    """The overload rows for `contenders` [(name, proc, port, capacity_on)], backends at
    0 ms (`capacity_on`: see `measure`)."""
    tokens = [run.mint("mobile", u) for u in range(1, run.USER_COUNT + 1)]
    graphql = {"path": "/graphql", "body": json.dumps({"query": run.HOME}),
               "headers": {"content-type": "application/json"}, "tokens": tokens,
               "bad": '"errors"'}
    run.set_latency(0)
    rows = []
    for name, proc, port, capacity_on in contenders:
        run.log(f"overload: {name}")
        rows.append(measure(name, proc, port, workdir, graphql, quiet, capacity_on))
    return rows


if __name__ == "__main__":
    import run  # noqa: E402 (run imports this module: imported here, not at the top)
    signal.signal(signal.SIGTERM, run._interrupted)
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
