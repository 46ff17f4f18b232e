#!/usr/bin/env python3
"""The sample backends' own cost, for working on them: the backend calls of one mobile home
query (a "set"), measured in instructions under callgrind, which is repeatable on a busy
machine.

    python3 demo/services/bench_backends.py                 # instructions per set (callgrind)
    python3 demo/services/bench_backends.py rss             # RSS after the sets and a sweep
    python3 demo/services/bench_backends.py capture F.json  # exact answers of many requests
    python3 demo/services/bench_backends.py compare F.json  # ... and whether they still match

Uses the existing release build (`cargo build --release -p demo-services --example
backends`), 127.0.0.1 only, ports `--port-base` to `--port-base + 9` (default 9600-9609, clear
of the benchmark's), polls for readiness with a deadline and stops the one process it started
by its pid. Python 3.11 standard library only.

A set is what the gateway sends for `home` for user U (U rotates over 1..64), with its
headers (`backends/src/*.rs`, and `src/upstream/wire.rs` in the core crate): first users, cart,
notifications, orders (limit 3), recommendations (limit 10) and promotions, then catalog (the
recommended ids) and shipping (the orders' ids), batched as the gateway's loaders do.

`capture` and `compare` run a fixed list of requests over every service (single ids, batches,
pages, errors, POSTs, idempotency replays, stats, chaos, echo, the IdP) and record status,
headers (but `date`) and body bytes; values that depend on the clock or on fresh RSA keys are
masked, everything else must match byte for byte. To check a change, capture with a copy of
the build before it (`--binary`) and compare with the build after.
"""

import argparse
import base64
import calendar
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.path.join(ROOT, "target", "release", "examples", "backends")
USERS_ROTATED = 64

# Offsets from the port base, in `Service::ALL` order.
AUTH, USERS, ORDERS, CATALOG, RECOMMENDATIONS, NOTIFICATIONS, CART, REVIEWS, SHIPPING, \
    PROMOTIONS = range(10)


def log(message):
    print(f"[bench_backends] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------ the process

class Backends:
    """The backends example, started once and stopped by pid (also on errors)."""

    def __init__(self, args, callgrind_out=None):
        self.base = args.port_base
        argv = [args.binary, "--port-base", str(self.base)]
        if callgrind_out:
            argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                    f"--callgrind-out-file={callgrind_out}", *argv]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.pid = self.proc.pid

    def wait_ready(self, deadline_s):
        deadline = time.monotonic() + deadline_s
        for offset in range(10):
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"backends exited early: {self.proc.stderr.read()!r}")
                try:
                    status, _, _ = request(self.base + offset, "GET", "/healthz", timeout=2)
                    if status == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"port {self.base + offset} not ready in {deadline_s} s")
                time.sleep(0.05)  # a poll interval, not a readiness guess

    def rss_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def request(port, method, path, headers=None, body=None, timeout=10):
    """One request on a fresh connection: (status, [(name, value)], body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        return exchange(conn, method, path, headers or {}, body)
    finally:
        conn.close()


def exchange(conn, method, path, headers, body=None):
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
        headers = {"content-type": "application/json", **headers}
    conn.putrequest(method, path, skip_accept_encoding=True)
    for name, value in headers.items():
        conn.putheader(name, value)
    if body is not None:
        conn.putheader("content-length", str(len(body)))
    conn.endheaders(body)
    response = conn.getresponse()
    data = response.read()
    return response.status, response.getheaders(), data


# ------------------------------------------------------------------------ the home set

class HomeSet:
    """The backend calls of one home query, over one kept-alive connection per service."""

    def __init__(self, base):
        self.base = base
        self.conns = {}
        self.sent = 0  # requests
        self.sets = 0

    def get(self, offset, path, headers):
        conn = self.conns.get(offset)
        if conn is None:
            conn = self.conns[offset] = http.client.HTTPConnection(
                "127.0.0.1", self.base + offset, timeout=30)
        status, _, body = exchange(conn, "GET", path, headers)
        if status != 200:
            raise RuntimeError(f"GET {path} on +{offset}: {status} {body[:200]!r}")
        self.sent += 1
        return json.loads(body)

    def run(self, user):
        self.sets += 1
        n = self.sets
        # What the gateway's upstream client sets (and the identity headers it forwards).
        headers = {
            "accept": "application/json",
            "x-request-id": f"bench-{n:08x}-{user}",
            "traceparent": f"00-{n:032x}-{user:016x}-01",
            "x-request-timeout-ms": "2000",
            "x-user-id": str(user),
            "x-scopes": "",
        }
        u = str(user)
        self.get(USERS, f"/users/{u}", headers)
        self.get(CART, f"/carts/{u}", headers)
        self.get(NOTIFICATIONS, f"/notifications?userId={u}", headers)
        orders = self.get(ORDERS, f"/orders?userId={u}&limit=3", headers)
        picks = self.get(RECOMMENDATIONS, f"/recommendations?userId={u}&limit=10", headers)
        self.get(PROMOTIONS, f"/promotions?userId={u}&placement=home", headers)
        # The loaders batch distinct keys; commas are percent-encoded like the gateway's query().
        product_ids = list(dict.fromkeys(item["productId"] for item in picks["items"]))
        self.get(CATALOG, "/products?ids=" + "%2C".join(product_ids), headers)
        order_ids = [order["id"] for order in orders["items"]]
        self.get(SHIPPING, "/shipments?orderIds=" + "%2C".join(order_ids), headers)

    def rounds(self, count):
        for i in range(count):
            self.run(i % USERS_ROTATED + 1)

    def close(self):
        for conn in self.conns.values():
            conn.close()


def program_totals(path):
    out = subprocess.run(["callgrind_annotate", path], capture_output=True, text=True,
                         check=True, timeout=300).stdout
    for line in out.splitlines():
        if "PROGRAM TOTALS" in line:
            return int(line.split()[0].replace(",", ""))
    raise RuntimeError(f"no PROGRAM TOTALS in callgrind_annotate {path}")


def measure(args):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        with Backends(args, callgrind_out=out) as backends:
            backends.wait_ready(args.ready_timeout)
            sets = HomeSet(backends.base)
            sets.rounds(USERS_ROTATED * 2)  # warm-up: every rotated user twice
            subprocess.run(["callgrind_control", "-i", "on", str(backends.pid)], check=True,
                           capture_output=True, timeout=60)
            sets.rounds(args.sets)
            subprocess.run(["callgrind_control", "-i", "off", str(backends.pid)], check=True,
                           capture_output=True, timeout=60)
            subprocess.run(["callgrind_control", "-d", str(backends.pid)], check=True,
                           capture_output=True, timeout=120)
            sets.close()
        # The dump written by `-d` is `out.1` (valgrind numbers dumps); the final one, at
        # exit, holds only what ran with instrumentation off.
        dumps = sorted(p for p in os.listdir(tmp) if p.startswith("callgrind.out."))
        dump = os.path.join(tmp, dumps[0])
        total = program_totals(dump)
        if args.keep_dump:
            shutil.copyfile(dump, args.keep_dump)
    per_set = total / args.sets
    print(f"{args.sets} sets: {total:,} instructions, {per_set:,.0f} per set "
          f"({per_set / 8:,.0f} per backend call)")


def rss(args):
    with Backends(args) as backends:
        backends.wait_ready(args.ready_timeout)
        log(f"RSS after start: {backends.rss_kib() / 1024:.1f} MiB")
        sets = HomeSet(backends.base)
        started = time.monotonic()
        sets.rounds(args.sets)
        elapsed = time.monotonic() - started
        log(f"{args.sets} sets in {elapsed:.2f} s (client included)")
        log(f"RSS after the sets: {backends.rss_kib() / 1024:.1f} MiB")
        sweep(sets)
        sets.close()
        print(f"RSS after the sets and a sweep of every user, product, order and shipment: "
              f"{backends.rss_kib() / 1024:.1f} MiB")


def sweep(sets):
    """Touches every id once, to show the caches stay bounded."""
    h = {"accept": "application/json"}
    for user in range(1, 10_001):
        u = str(user)
        sets.get(USERS, f"/users/{u}", h)
        sets.get(CART, f"/carts/{u}", h)
        sets.get(NOTIFICATIONS, f"/notifications?userId={u}", h)
        sets.get(RECOMMENDATIONS, f"/recommendations?userId={u}&limit=10", h)
        sets.get(PROMOTIONS, f"/promotions?userId={u}&placement=home", h)
        sets.get(ORDERS, f"/orders?userId={u}&limit=50", h)
        sets.get(SHIPPING, "/shipments?orderIds=" + ",".join(f"o-{u}-{n}" for n in range(1, 13)), h)
    for first in range(1, 50_001, 100):
        ids = ",".join(f"p{n}" for n in range(first, first + 100))
        sets.get(CATALOG, f"/products?ids={ids}", h)
        sets.get(REVIEWS, f"/reviews/summary?productIds={ids}", h)
    log(f"sweep done, {sets.sent} requests in all")


# ------------------------------------------------------------------------ byte-exact answers

NOW_WINDOW_S = 2 * 86_400
RFC3339 = re.compile(rb'"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z"')


def mask_clock(body):
    """Timestamps near the wall clock (created orders, changed carts) cannot repeat."""
    now = time.time()

    def near_now(match):
        secs = calendar.timegm(tuple(int(g) for g in match.groups()))
        return b'"<now>"' if abs(secs - now) < NOW_WINDOW_S else match.group(0)
    return RFC3339.sub(near_now, body)


def mask_created_order(body):
    # A created order's payment method is seeded from the clock.
    return re.sub(rb'("paymentMethod":\{"brand":")[^"]*(","last4":")\d{4}"',
                  rb'\1<clock>\2<clock>"', mask_clock(body))


def mask_bytes_sent(body):
    return re.sub(rb'"bytes_sent":\d+', b'"bytes_sent":"<clock>"', body)


def mask_keys(body):
    """Fresh RSA keys per start: keep the shape, mask the key material and fingerprints."""
    body = re.sub(rb'"n":"[A-Za-z0-9_-]+"', b'"n":"<modulus>"', body)
    return re.sub(rb'(demo-\d+-)[0-9a-f]{8}', rb'\1<fingerprint>', body)


def mask_token(body):
    """A token's header and claims, clock values masked; the signature is dropped."""
    doc = json.loads(body)
    parts = doc["access_token"].split(".")
    decoded = [json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in parts[:2]]
    header, claims = decoded
    header["kid"] = re.sub(r"-[0-9a-f]{8}$", "-<fingerprint>", header["kid"])
    for name in ("iat", "nbf", "exp"):
        claims[name] = "<clock>"
    doc["access_token"] = {"header": header, "claims": claims, "parts": len(parts)}
    return json.dumps(doc).encode()


def probes():
    """(name, service offset, method, path, headers, body, mask): the requests compared."""
    h = {"accept": "application/json", "x-request-id": "probe", "x-user-id": "7"}
    p = []

    def add(service, path, method="GET", headers=None, body=None, mask=None, name=None):
        p.append((name or f"{method} +{service} {path}", service, method, path,
                  headers if headers is not None else h, body, mask))

    for service in range(10):
        add(service, "/healthz")
        add(service, "/no/such/route")
    # users
    for u in (1, 2, 42, 777, 5000, 10000):
        add(USERS, f"/users/{u}")
    for bad in ("0", "10001", "042", "abc", "-1"):
        add(USERS, f"/users/{bad}")
    for q in ("ids=1,2,99999", "ids=", "ids=3%2C4", "ids=%205%20,,6", "ids=10000,1,1", "",
              "ids=1&ids=2", "idz=1"):
        add(USERS, f"/users?{q}" if q else "/users")
    # catalog
    for n in ("p1", "p2", "p123", "p49999", "p50000", "p0", "p50001", "p01", "1"):
        add(CATALOG, f"/products/{n}")
    for q in ("ids=p3,p1,nope,p60000,p2", "ids=", "ids=p7%2Cp8%2Cp7", "category=books&limit=5",
              "category=BOOKS&limit=5&cursor=p100", "category=nope", "limit=0", "limit=1000",
              "", "cursor=p0", "cursor=p49990", "q=steel", "q=Steel%20lamp&limit=3",
              "q=zzzz", "category=toys&q=oak&limit=7", "ids=p5&category=books"):
        add(CATALOG, f"/products?{q}" if q else "/products")
    # recommendations
    for q in ("userId=3&limit=5", "userId=3", "userId=3&limit=50", "userId=3&limit=100",
              "userId=64&limit=10", "userId=3&limit=0", "userId=3&limit=x", "", "userId=0",
              "userId=10000&limit=1"):
        add(RECOMMENDATIONS, f"/recommendations?{q}" if q else "/recommendations")
    # notifications
    for q in ("userId=1", "userId=2", "userId=64", "userId=10000", "", "userId=10001",
              "userId=07"):
        add(NOTIFICATIONS, f"/notifications?{q}" if q else "/notifications")
    # promotions
    for q in ("userId=3&placement=home", "userId=3", "", "placement=cart", "userId=64",
              "userId=3&placement=BAD", "userId=0", "placement=" + "x" * 33,
              "userId=9&placement=checkout_top-2"):
        add(PROMOTIONS, f"/promotions?{q}" if q else "/promotions")
    # reviews
    for q in ("productId=p9", "productId=p1", "productId=p50000", "productId=p0", ""):
        add(REVIEWS, f"/reviews?{q}" if q else "/reviews")
    add(REVIEWS, "/reviews/summary?productIds=p2,p1,p0,p9,p50000,p123")
    add(REVIEWS, "/reviews/summary?productIds=")
    add(REVIEWS, "/reviews/summary")
    # shipping
    for q in ("orderIds=o-1-1,bogus,o-2-3", "orderIds=o-42-13", "orderIds=o-1-4000000000",
              "orderIds=o-7-1%2Co-7-2%2Co-7-3", "orderIds=", "", "orderIds=o-0-1,o-1-0,o-01-1"):
        add(SHIPPING, f"/shipments?{q}" if q else "/shipments")
    # orders: lists, pages, single orders
    for q in ("userId=42", "userId=42&limit=2", "userId=42&limit=2&cursor=o-42-3",
              "userId=42&limit=100", "userId=42&limit=0", "userId=42&cursor=bogus",
              "limit=2", "userId=99999", "userId=1&limit=3", "userId=64&limit=3"):
        add(ORDERS, f"/orders?{q}")
    for o in ("o-42-1", "o-42-3", "o-42-99", "o-42-0", "o-x-1", "o-1-1"):
        add(ORDERS, f"/orders/{o}")
    # orders: POSTs, idempotency, then the lists and ids that show the created orders
    order = {"items": [{"productId": "p10", "quantity": 2}, {"productId": "p11", "quantity": 1}]}
    keyed = {**h, "idempotency-key": "checkout-1"}
    add(ORDERS, "/orders", "POST", keyed, order, mask_created_order, "create keyed")
    add(ORDERS, "/orders", "POST", keyed, {"items": []}, mask_created_order, "replay keyed")
    add(ORDERS, "/orders", "POST", h, order, mask_created_order, "create unkeyed")
    add(ORDERS, "/orders", "POST", {"accept": "application/json"}, order, None, "no identity")
    add(ORDERS, "/orders", "POST", h, {"items": [{"productId": "p0", "quantity": 1}]})
    add(ORDERS, "/orders", "POST", h, {"items": [{"productId": "p1", "quantity": 100}]})
    add(ORDERS, "/orders", "POST", h, {"items": []})
    add(ORDERS, "/orders", "POST", h, b"{not json", None, "malformed order")
    add(ORDERS, "/orders", "POST", {**h, "idempotency-key": ""}, order)
    for q in ("userId=7&limit=50", "userId=7&limit=1", "userId=7&limit=1&cursor=o-7-1"):
        add(ORDERS, f"/orders?{q}", mask=mask_created_order)
    add(SHIPPING, "/shipments?orderIds=o-7-1,o-7-13,o-7-14", mask=mask_created_order)
    # cart
    for u in ("5", "6", "0", "10000"):
        add(CART, f"/carts/{u}")
    add(CART, "/carts/5/items", "POST", h, {"productId": "p777", "quantity": 2}, mask_clock)
    add(CART, "/carts/5/items", "POST", h, {"productId": "p777", "quantity": 98}, mask_clock)
    add(CART, "/carts/5/items", "POST", h, {"productId": "p3"}, mask_clock)
    add(CART, "/carts/5", mask=mask_clock)
    add(CART, "/carts/6", name="GET cart 6 again")
    add(CART, "/carts/5/items", "POST", h, {"productId": "p0"})
    add(CART, "/carts/5/items", "POST", h, {"productId": "p1", "quantity": 0})
    add(CART, "/carts/0/items", "POST", h, {"productId": "p1"})
    add(CART, "/carts/5/items", "POST", h, b"[]", None, "malformed cart line")
    # echo and the IdP
    add(SHIPPING, "/_echo", "POST", {"content-type": "text/plain"}, bytes(range(256)) * 64)
    add(AUTH, "/.well-known/jwks.json", mask=mask_keys)
    add(AUTH, "/token", "POST", h, {"sub": "42", "aud": "mobile", "scopes": ["a", "b"],
                                    "tier": "gold"}, mask_token)
    add(AUTH, "/token", "POST", h, {"aud": "mobile"})
    add(AUTH, "/token", "POST", h, {"sub": "1", "aud": "m", "ttl_s": 999_999_999})
    add(AUTH, "/_rotate", "POST", h, None, mask_keys)
    add(AUTH, "/.well-known/jwks.json", mask=mask_keys, name="jwks after rotation")
    # stats after all of the above, then a reset
    for service in range(1, 10):
        # Created orders' sizes depend on the clock (their payment brand is seeded from it).
        add(service, "/_stats", mask=mask_bytes_sent if service == ORDERS else None)
    add(USERS, "/_stats", "DELETE")
    add(USERS, "/_stats", name="stats after reset")
    return p


def chaos_probes(base):
    """Fault injection on users, recorded as (name, outcome)."""
    port = base + USERS
    h = {"accept": "application/json"}
    out = []

    def chaos(config):
        out.append((f"chaos {config}", request(port, "POST", "/_chaos", h, config)))

    chaos({"error_rate": 1, "status": 502})
    out.append(("faulted", request(port, "GET", "/users/1", h)))
    chaos({"malformed": True})
    for path in ("/users/1", "/users?ids=1,2", "/users/99999"):
        out.append((f"malformed {path}", request(port, "GET", path, h)))
    chaos({"latency_ms": 50, "jitter_ms": 10})
    out.append(("latency", request(port, "GET", "/users/3", h)))
    chaos({"latency": 5})
    out.append(("chaos shown", request(port, "GET", "/_chaos", h)))
    chaos({"reset": True})
    try:
        outcome = request(port, "GET", "/users/1", h, timeout=5)
    except (TimeoutError, socket.timeout):
        outcome = "timeout"
    except (OSError, http.client.HTTPException):
        outcome = "connection error"
    out.append(("reset", outcome))
    chaos({"hang": True})
    try:
        outcome = request(port, "GET", "/users/1", h, timeout=0.3)
    except (socket.timeout, TimeoutError):
        outcome = "timeout"
    out.append(("hang", outcome))
    out.append(("chaos cleared", request(port, "DELETE", "/_chaos", h)))
    # The hung request is cancelled once its connection closes: wait for the count to land.
    deadline = time.monotonic() + 10
    while True:
        status, headers, body = request(port, "GET", "/_stats", h)
        if json.loads(body)["cancelled"] >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    out.append(("stats after chaos", (status, headers, body)))
    return out


def answers(args):
    """Every probe's masked outcome, as JSON-able records."""
    records = []
    with Backends(args) as backends:
        backends.wait_ready(args.ready_timeout)
        for name, service, method, path, headers, body, mask in probes():
            status, response_headers, data = request(backends.base + service, method, path,
                                                     headers, body)
            records.append(record(name, (status, response_headers, data), mask))
        for name, outcome in chaos_probes(backends.base):
            records.append(record(name, outcome, None))
    return records


def record(name, outcome, mask):
    if not isinstance(outcome, tuple) or len(outcome) != 3:
        return {"name": name, "outcome": repr(outcome)}
    status, headers, data = outcome
    if mask:
        data = mask(data)
        # What a mask hides can change the length too.
        headers = [(k, "<masked>" if k.lower() == "content-length" else v) for k, v in headers]
    return {
        "name": name,
        "status": status,
        "headers": [[k.lower(), v] for k, v in headers if k.lower() != "date"],
        "body_b64": base64.b64encode(data).decode(),
    }


def capture(args):
    records = answers(args)
    with open(args.file, "w") as f:
        json.dump(records, f, indent=1)
    print(f"{len(records)} answers written to {args.file}")


def compare(args):
    with open(args.file) as f:
        expected = json.load(f)
    actual = answers(args)
    differences = 0
    for want, got in zip(expected, actual, strict=True):
        if want != got:
            differences += 1
            print(f"DIFFERENT: {want['name']}")
            for key in ("status", "headers", "outcome"):
                if want.get(key) != got.get(key):
                    print(f"  {key}: {want.get(key)!r} != {got.get(key)!r}")
            if want.get("body_b64") != got.get("body_b64"):
                a = base64.b64decode(want["body_b64"])
                b = base64.b64decode(got["body_b64"])
                at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y),
                          min(len(a), len(b)))
                around = slice(max(at - 40, 0), at + 40)
                print(f"  body differs at byte {at}: {a[around]!r} != {b[around]!r}")
    print(f"{len(actual)} answers compared, {differences} different")
    return 1 if differences else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default=BINARY)
    parser.add_argument("--port-base", type=int, default=9600)
    parser.add_argument("--sets", type=int, default=200, help="measured sets (default 200)")
    parser.add_argument("--ready-timeout", type=float, default=300,
                        help="seconds to wait for all ten to listen (valgrind is slow)")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("measure", help="instructions per set under callgrind (the default)")
    parser.add_argument("--keep-dump", metavar="PATH",
                        help="measure: keep the callgrind dump here, for callgrind_annotate")
    sub.add_parser("rss", help="RSS after the sets and a sweep over every id, natively")
    for name in ("capture", "compare"):
        sub.add_parser(name, help=f"{name} the exact answers of many requests").add_argument(
            "file")
    args = parser.parse_args()
    command = args.command or "measure"
    return {"measure": measure, "rss": rss, "capture": capture, "compare": compare}[
        command](args) or 0


if __name__ == "__main__":
    sys.exit(main())
