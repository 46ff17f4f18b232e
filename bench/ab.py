#!/usr/bin/env python3
"""Two builds of the gateway under the same load, alternated: is a change faster under load,
not only in instructions? `python3 bench/ab.py --base REV home-plain`.

A change of a few percent in instructions does not show in one `bench/profile.py` run: on a
shared two-core machine the same binary's CPU per request moves by a fifth within minutes.
This runs `profile.py SCENARIO` for each build in turn, `--pairs` times (the order flips
every pair, so a drifting machine favours neither), and compares medians of the gateway's
CPU per request over the sample backends' CPU in the same run (what the backends cost for
the same answers measures how busy the machine was). With `--callgrind N` it also counts
each build's instructions per request.

The builds: `--base REV` builds that revision's binary for the scenario in a temporary git
worktree (sharing `target/`: the dependencies are not built again) and compares it with the
checkout's release build as it stands (build it first: `cargo build --release -p bff-mobile`); `--a PATH --b PATH` compares two executables as they are. The
sample backends are the checkout's for both. 127.0.0.1 only; profile.py stops what it starts.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import profile as scenarios  # noqa: E402  (bench/profile.py, not the standard library's)
import run  # noqa: E402

LOAD = re.compile(r": ([\d,]+) req/s, p50 ([\d.]+) ms, p99 ([\d.]+) ms, failed (\d+)")
CPU = re.compile(r"CPU per request: gateway ([\d.]+) us \(user ([\d.]+), system ([\d.]+)\), "
                 r"backends ([\d.]+) us")
INSTRUCTIONS = re.compile(r": ([\d,]+) instructions per request")


def build_base(rev, binary, workdir):
    """`binary` as revision `rev` builds it, copied to `workdir`; the checkout's own build is
    put back where it was (building the worktree writes the same `target/release` path)."""
    package = binary  # each BFF binary is its package's
    release = os.path.join(run.RELEASE, binary)
    kept = os.path.join(workdir, f"{binary}.checkout")
    shutil.copy2(release, kept)
    source = os.path.join(workdir, "src")
    run.run(["git", "-C", run.ROOT, "worktree", "add", "--detach", "--force", source, rev], 120,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        run.log(f"building {binary} at {rev} (dependencies shared with target/)")
        run.run(["cargo", "build", "--release", "--locked", "-p", package, "--target-dir",
                 os.path.dirname(run.RELEASE)], 3600, cwd=source)
        built = os.path.join(workdir, f"{binary}.{rev}")
        shutil.copy2(release, built)
    finally:
        run.run(["git", "-C", run.ROOT, "worktree", "remove", "--force", source], 120)
        shutil.copy2(kept, release)
    return built


def measure(scenario, executable, args):
    argv = [sys.executable, os.path.join(run.BENCH, "profile.py"), scenario, "--gateway-binary",
            executable, "--duration", str(args.duration), "--connections", str(args.connections),
            "--latency", str(args.latency)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=args.duration + 300)
    load, cpu = LOAD.search(out.stdout), CPU.search(out.stdout)
    if out.returncode != 0 or not load or not cpu:
        raise RuntimeError(f"profile.py failed:\n{out.stdout}\n{out.stderr}")
    rps, p50, p99, failed = load.groups()
    gateway, user, system, backends = map(float, cpu.groups())
    return {"rps": float(rps.replace(",", "")), "p50": float(p50), "p99": float(p99),
            "failed": int(failed), "gateway": gateway, "user": user, "system": system,
            "backends": backends, "relative": gateway / backends if backends else float("nan")}


def instructions(scenario, executable, count):
    argv = [sys.executable, os.path.join(run.BENCH, "profile.py"), scenario, "--gateway-binary",
            executable, "--callgrind", str(count), "--top", "0"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    found = INSTRUCTIONS.search(out.stdout)
    if out.returncode != 0 or not found:
        raise RuntimeError(f"profile.py --callgrind failed:\n{out.stdout}\n{out.stderr}")
    return int(found.group(1).replace(",", ""))


def spread(rows, key):
    """`key`'s range over `rows`, as min-max."""
    return f"{min(r[key] for r in rows):.3f}-{max(r[key] for r in rows):.3f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=sorted(scenarios.SCENARIOS))
    parser.add_argument("--base", metavar="REV", help="compare the checkout's build with REV's")
    parser.add_argument("--a", metavar="PATH", help="the first executable (instead of --base)")
    parser.add_argument("--b", metavar="PATH", help="the second executable (with --a)")
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--latency", type=int, default=0, help="backend latency in ms")
    parser.add_argument("--callgrind", type=int, metavar="N",
                        help="also count each build's instructions over N requests")
    args = parser.parse_args()
    if bool(args.base) == bool(args.a or args.b) or bool(args.a) != bool(args.b):
        parser.error("give --base REV, or both --a PATH and --b PATH")

    binary = scenarios.SCENARIOS[args.scenario][0]
    workdir = tempfile.mkdtemp(prefix="manifold-ab-")
    try:
        if args.base:
            checkout = os.path.join(run.RELEASE, binary)
            # Checked first: building the base writes the same path, and would then be
            # compared with itself.
            if not os.access(checkout, os.X_OK):
                sys.exit(f"no release build of {binary}: cargo build --release -p {binary}")
            builds = {args.base: build_base(args.base, binary, workdir), "checkout": checkout}
        else:
            builds = {"a": args.a, "b": args.b}
        for name, path in builds.items():
            if not os.access(path, os.X_OK):
                sys.exit(f"{name}: no executable at {path}")
        names = list(builds)
        results = {name: [] for name in names}
        for pair in range(args.pairs):
            order = names if pair % 2 == 0 else names[::-1]
            for name in order:
                r = measure(args.scenario, builds[name], args)
                results[name].append(r)
                print(f"pair {pair + 1}/{args.pairs} {name:>12}: gateway {r['gateway']:6.1f} us "
                      f"(user {r['user']:.1f}, system {r['system']:.1f}), backends "
                      f"{r['backends']:6.1f} us, gateway/backends {r['relative']:.3f}, "
                      f"{r['rps']:,.0f} req/s, p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, "
                      f"failed {r['failed']}", flush=True)
        print(f"\n{args.scenario}, {args.pairs} alternated pairs of {args.duration} s, medians "
              f"(min-max):")
        median = {}
        for name in names:
            rows = results[name]
            median[name] = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
            m = median[name]
            print(f"  {name:>12}: gateway {m['gateway']:.1f} us (user {m['user']:.1f}, system "
                  f"{m['system']:.1f}), gateway/backends {m['relative']:.3f} ({spread(rows, 'relative')}), "
                  f"{m['rps']:,.0f} req/s, p99 {m['p99']:.2f} ms")
        first, second = names
        # Each pair ran back to back: its ratio cancels most of the machine's drift.
        paired = sorted(b["relative"] / a["relative"]
                        for a, b in zip(results[first], results[second]))
        print(f"  {second} / {first}: gateway/backends {statistics.median(paired):.3f} "
              f"(median of the pairs' ratios, {paired[0]:.3f}-{paired[-1]:.3f}); medians' ratios: "
              f"gateway/backends {median[second]['relative'] / median[first]['relative']:.3f}, "
              f"gateway CPU {median[second]['gateway'] / median[first]['gateway']:.3f}, "
              f"throughput {median[second]['rps'] / median[first]['rps']:.3f}")
        if args.callgrind:
            counts = {name: instructions(args.scenario, builds[name], args.callgrind)
                      for name in names}
            print("  instructions per request: " + ", ".join(
                f"{name} {count:,}" for name, count in counts.items())
                  + f" ({counts[second] / counts[first] - 1:+.2%})")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
