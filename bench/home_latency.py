#!/usr/bin/env python3
"""Sequential latency of the mobile home query against a running demo.

Usage: start the demo (`cargo run --release -p demo`), then
    python3 bench/home_latency.py [--requests 200] [--backend-latency-ms 0]

It sets the given latency on every sample backend (POST /_chaos), sends the home query N
times one after the other on one keep-alive connection, prints p50/p90/p99, and clears the
chaos again. Standard library only.
"""

import argparse
import http.client
import json
import random
import statistics
import time

from run import BACKEND_PORTS, HOME  # the same query and backends the benchmark uses


def call(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"content-type": "application/json", **(headers or {})})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--backend-latency-ms", type=int, default=0)
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--fail", metavar="SERVICE_PORT", type=int,
                        help="make the backend on this port answer 503 to everything (e.g. 9104, "
                             "recommendations) and measure only the queries after its circuit opened")
    args = parser.parse_args()

    # A user of its own per run, so that runs in a row stay clear of the per-user rate limit.
    user = str(random.randint(1, 10000))
    status, data = call(9100, "POST", "/token", {"sub": user, "aud": "mobile", "ttl_s": 3600})
    assert status == 200, data
    token = json.loads(data)["access_token"]

    for port in BACKEND_PORTS:
        if args.backend_latency_ms:
            call(port, "POST", "/_chaos", {"latency_ms": args.backend_latency_ms})
        else:
            call(port, "DELETE", "/_chaos")
    if args.fail:
        call(args.fail, "POST", "/_chaos", {"error_rate": 1.0, "latency_ms": args.backend_latency_ms})
    try:
        conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=10)
        body = json.dumps({"query": HOME})
        headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}
        samples = []
        for i in range(args.requests + 10):
            start = time.perf_counter()
            conn.request("POST", "/graphql", body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            elapsed = time.perf_counter() - start
            assert response.status == 200, payload
            if args.fail:
                # Count only fast failures: the circuit is open once the error says so.
                if b"CIRCUIT_OPEN" in payload:
                    samples.append(elapsed * 1000)
                continue
            assert b'"errors"' not in payload, payload
            if i >= 10:  # the first few warm the connection pools
                samples.append(elapsed * 1000)
        samples.sort()
        q = lambda p: samples[min(len(samples) - 1, int(p * len(samples)))]
        what = f", port {args.fail} failing (circuit open)" if args.fail else ""
        print(f"home query{what}, {len(samples)} sequential requests, backends at "
              f"{args.backend_latency_ms} ms: p50 {statistics.median(samples):.2f} ms, "
              f"p90 {q(0.90):.2f} ms, p99 {q(0.99):.2f} ms, payload {len(payload)} bytes")
    finally:
        for port in BACKEND_PORTS:
            call(port, "DELETE", "/_chaos")


if __name__ == "__main__":
    main()
