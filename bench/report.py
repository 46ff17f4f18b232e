"""BENCHMARKS.md: the machine and versions, the targets of the benchmark issue marked met or
not, and per backend latency one table per scenario (medians over the rounds) with the
ratios of each Manifold configuration to each peer."""

import json
import os
import platform
import statistics
import subprocess
import time

PLAIN, PRODUCTION = "Manifold plain", "Manifold production"


def _cmd(argv, cwd=None):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=cwd)
        return (out.stdout + out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unknown"


def machine_and_versions(root, apollo_dir):
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    lock_path = os.path.join(apollo_dir, "package-lock.json")
    with open(lock_path) as f:
        packages = json.load(f)["packages"]
    npm = {name: packages.get(f"node_modules/{name}", {}).get("version", "?")
           for name in ("@apollo/server", "@apollo/datasource-rest", "graphql")}
    commit = _cmd(["git", "rev-parse", "--short=12", "HEAD"], cwd=root)
    dirty = _cmd(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root)
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": model,
        "nproc": os.cpu_count(),
        "memory_gib": mem_kib / 1024 / 1024,
        "kernel": platform.release(),
        "os": _cmd(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "commit": commit + (" (with uncommitted changes)" if dirty not in ("", "unknown") else ""),
        "rustc": _cmd(["rustc", "--version"]),
        "nginx": _cmd(["nginx", "-v"]).replace("nginx version: ", ""),
        "haproxy": _cmd(["haproxy", "-v"]).replace("HA-Proxy version ", "HAProxy "),
        "node": _cmd(["node", "--version"]),
        "npm": npm,
        "wrk": _cmd(["wrk", "-v"]).split(" [")[0],
    }


def _median(runs, key):
    return statistics.median(r[key] for r in runs)


def _summary(runs):
    return {key: _median(runs, key) for key in ("rps", "p50_ms", "p99_ms", "cpu_us",
                                                "backends_cpu_us")} | {
        # The kernel's part of the contender's CPU (absent from results saved before it was).
        "cpu_system_us": (_median(runs, "cpu_system_us")
                          if all("cpu_system_us" in r for r in runs) else None)} | {
        "errors": sum(r["errors"] for r in runs), "requests": sum(r["requests"] for r in runs),
        "bad": sum(r["bad"] for r in runs)}


def _fmt(x, digits=2):
    return "n/a" if x is None else f"{x:,.{digits}f}"


def _targets(results, idle, at_1000, ready_ms):
    """Rows (target, measured, verdict) for every target of the issue that this run measured."""
    rows = []

    def get(latency, scenario, contender):
        runs = results.get(latency, {}).get(scenario, {}).get(contender)
        return _summary(runs) if runs else None

    def verdict(ok, *summaries):
        if any(s is None for s in summaries):
            return "not measured"
        if any(s["errors"] for s in summaries):
            return "invalid (errors)"
        return "**met**" if ok else "**not met**"

    # The performance issue's targets: plain at nginx's CPU and throughput, production at
    # most 1.3x nginx's CPU.
    for config, cpu_factor in ((PLAIN, 1.0), (PRODUCTION, 1.3)):
        m, nginx = get(0, "proxy route", config), get(0, "proxy route", "nginx")
        if m and nginx:
            if config == PLAIN:
                rows.append((f"proxy route, 0 ms: throughput >= nginx ({config})",
                             f"{m['rps'] / nginx['rps']:.2f}x nginx",
                             verdict(m["rps"] >= nginx["rps"], m, nginx)))
            bound = "nginx" if cpu_factor == 1.0 else f"{cpu_factor}x nginx"
            rows.append((f"proxy route, 0 ms: CPU per request <= {bound} ({config})",
                         f"{m['cpu_us']:.1f} vs {nginx['cpu_us']:.1f} us "
                         f"({m['cpu_us'] / nginx['cpu_us']:.2f}x)",
                         verdict(m["cpu_us"] <= cpu_factor * nginx["cpu_us"], m, nginx)))
        m, floor = get(20, "proxy route", config), get(20, "proxy route", "backend direct (floor)")
        if m and floor:
            added = m["p50_ms"] - floor["p50_ms"]
            rows.append((f"proxy route, 20 ms: added p50 <= 0.3 ms ({config})",
                         f"{added:+.2f} ms", verdict(added <= 0.3, m, floor)))
    for config in (PLAIN, PRODUCTION):
        m, apollo = get(0, "mobile home, cold cache", config), get(0, "mobile home, cold cache", "Apollo Server")
        if m and apollo:
            rows.append((f"mobile home, 0 ms: throughput >= 10x Apollo ({config})",
                         f"{m['rps'] / apollo['rps']:.1f}x", verdict(m["rps"] >= 10 * apollo["rps"], m, apollo)))
            rows.append((f"mobile home, 0 ms: p99 <= 1/10 of Apollo's ({config})",
                         f"{m['p99_ms']:.2f} vs {apollo['p99_ms']:.2f} ms",
                         verdict(m["p99_ms"] * 10 <= apollo["p99_ms"], m, apollo)))
            rows.append((f"mobile home, 0 ms: CPU per query <= 1/20 of Apollo's ({config})",
                         f"{m['cpu_us']:.0f} vs {apollo['cpu_us']:.0f} us "
                         f"(1/{apollo['cpu_us'] / m['cpu_us']:.1f})",
                         verdict(m["cpu_us"] * 20 <= apollo["cpu_us"], m, apollo)))
        m = get(20, "mobile home, cold cache", config)
        floor = get(20, "proxy route", "backend direct (floor)")
        if m and floor:
            # The floor: two waves of what one "20 ms" backend call takes when called
            # directly under load.
            waves = 2 * floor["p50_ms"]
            rows.append((f"mobile home, 20 ms: p50 within 3 ms of the two-wave floor ({config})",
                         f"{m['p50_ms']:.2f} ms against {waves:.2f} ms "
                         f"(one backend call direct: p50 {floor['p50_ms']:.2f} ms)",
                         verdict(m["p50_ms"] <= waves + 3.0, m, floor)))
    for name, mib in idle.items():
        if name.startswith(("web-", "mobile-", "partner-")) and not name.endswith("-warm"):
            rows.append((f"RSS idle < 30 MiB ({name})", f"{mib:.1f} MiB",
                         "**met**" if mib < 30 else "**not met**"))
    for name, mib in at_1000.items():
        if name.startswith(("web-", "mobile-", "partner-")):
            rows.append((f"RSS at 1,000 connections < 150 MiB ({name})", f"{mib:.1f} MiB",
                         "**met**" if mib < 150 else "**not met**"))
    for name, ms in ready_ms.items():
        rows.append((f"ready < 200 ms ({name}: start to /readyz 200)", f"{ms:.0f} ms",
                     "**met**" if ms < 200 else "**not met**"))
    return rows


def render(meta, results, scenarios, idle, at_1000, ready_ms, peaks, findings):
    out = ["# Benchmarks", ""]
    out.append(f"Generated by `python3 bench/run.py` on {meta['date']} "
               f"in {meta['wall_s'] / 60:.1f} min (see `bench/README.md`).")
    if meta["quick"]:
        out += ["", "**Quick smoke run (`--quick`): the numbers only show that the harness "
                    "works; they are not a measurement.**"]
    npm = meta["npm"]
    load_b, load_a = meta["load_before"], meta["load_after"]
    out += ["", "## Machine and versions", "",
            f"- CPU: {meta['cpu']}, {meta['nproc']} cores (`nproc`); memory {meta['memory_gib']:.1f} GiB; "
            f"{meta['os']}, kernel {meta['kernel']}",
            f"- load average (1 min) before the run {load_b[0]:.2f}, after {load_a[0]:.2f}",
            f"- Manifold {meta['commit']}, {meta['rustc']}, release build",
            f"- peers: nginx {meta['nginx']}; {meta['haproxy']}; Node.js {meta['node']} with "
            f"@apollo/server {npm['@apollo/server']}, @apollo/datasource-rest "
            f"{npm['@apollo/datasource-rest']}, graphql {npm['graphql']}; load: {meta['wrk']}",
            f"- method: {meta['connections']} connections, {meta['duration']:g} s per measurement, "
            f"{meta['rounds']} round(s), scenarios and contenders interleaved (each round in another "
            f"order); medians over the rounds. The load generator, the backends and every contender "
            f"share this machine's cores. CPU per request is the contender's own utime+stime "
            f"(/proc/PID/stat, all its processes) over the measurement divided by the requests "
            f"answered, \"of it kernel\" its stime alone; backends CPU is the same for the sample backends serving it; peak RSS is VmHWM (summed over a server's processes).",
            "- plain: no rate limits, the proxy route without auth (like the proxies); the mobile "
            "query still verifies the user's JWT and the partner API its key (neither works "
            "without). production: the shipped config, JWT on the proxy route, every rate-limit "
            "rule on (raised so it never refuses). The Apollo BFF verifies the same JWT (RS256 via "
            "node:crypto) and runs one worker per core (node:cluster), NODE_ENV=production.",
            ""]
    if not meta["warm_cache"]:
        out += ["- mobile home, warm cache: **no cache yet** (bench/cache-warm.toml is empty); "
                "the cold-cache rows are the gateway without a response cache.", ""]

    if findings:
        out += ["## Problems seen during the run", ""] + [f"- {f}" for f in findings] + [""]
    out += ["## Targets", "", "| target | measured | |", "|---|---|---|"]
    out += [f"| {t} | {m} | {v} |" for t, m, v in _targets(results, idle, at_1000, ready_ms)]
    out.append("")

    for latency, per_scenario in results.items():
        out += [f"## Backends at {latency} ms", ""]
        for scenario, contenders in scenarios.items():
            runs = per_scenario.get(scenario)
            if not runs:
                continue
            out += [f"### {scenario}", "",
                    "| contender | req/s | p50 ms | p99 ms | CPU us/req | of it kernel | "
                    "backends CPU us/req | peak RSS MiB | failed / wrong answers |",
                    "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
            summaries = {}
            for c in contenders:
                s = summaries[c.name] = _summary(runs[c.name])
                out.append(f"| {c.name} | {_fmt(s['rps'], 0)} | {_fmt(s['p50_ms'])} | "
                           f"{_fmt(s['p99_ms'])} | {_fmt(s['cpu_us'], 1)} | "
                           f"{_fmt(s['cpu_system_us'], 1)} | "
                           f"{'(itself)' if c.kind == 'floor' else _fmt(s['backends_cpu_us'], 1)} | "
                           f"{_fmt(peaks.get(c.proc.name), 1)} | {s['errors'] - s['bad']} / {s['bad']} |")
            others = [c for c in contenders if c.kind != "manifold"]
            mine = [c for c in contenders if c.kind == "manifold"]
            if others and mine:
                out += ["", "| Manifold / peer | throughput | p50 | p99 | CPU per request |",
                        "|---|--:|--:|--:|--:|"]
                for m in mine:
                    for o in others:
                        a, b = summaries[m.name], summaries[o.name]
                        out.append(f"| {m.name.removeprefix('Manifold ')} / {o.name} | "
                                   f"{a['rps'] / b['rps']:.2f}x | {a['p50_ms'] / b['p50_ms']:.2f}x | "
                                   f"{a['p99_ms'] / b['p99_ms']:.2f}x | {a['cpu_us'] / b['cpu_us']:.2f}x |")
            out.append("")

    out += ["## Memory and start", "", "| process | RSS idle MiB | RSS at 1,000 open connections MiB |",
            "|---|--:|--:|"]
    for name, mib in idle.items():
        out.append(f"| {name} | {mib:.1f} | {_fmt(at_1000.get(name), 1)} |")
    out += ["", "Time from process start to the first `/readyz` 200 (median): " +
            ", ".join(f"{name} {ms:.0f} ms" for name, ms in ready_ms.items()) +
            " (mobile-production loads the JWKS first).", ""]
    return "\n".join(out)


LOG_HEADING = "## Optimisation log"


# Sections other scripts write (`bench/spans.py`), carried over as they are.
KEPT_SECTIONS = ("## Span export",)


def kept_log(path):
    """The sections `run.py` does not measure (`KEPT_SECTIONS`) and the hand-written
    optimisation log (before/after numbers) of an existing report, carried over when the
    tables are regenerated."""
    try:
        with open(path) as f:
            old = f.read()
    except OSError:
        return ""
    kept = ""
    for heading in KEPT_SECTIONS:
        at = old.find(heading + "\n")
        if at >= 0:
            end = old.find("\n## ", at + len(heading))
            kept += "\n" + (old[at:end + 1] if end >= 0 else old[at:])
    at = old.find(LOG_HEADING)
    return kept + ("\n" + old[at:] if at >= 0 else "")
