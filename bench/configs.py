"""The configs the benchmark runs with: Manifold's bench configs (derived from the shipped
config/*.toml, so they follow every change to them) and the peers' (nginx, HAProxy).

Gateway configurations:
- production: the shipped config, with every rate-limit rule and quota raised to RATE_LIMIT
  so the limits are checked on every request but never refuse (the load comes from a few
  users);
- plain: no rate limits, and the proxy route with `auth = "none"` like the proxies. The
  mobile home query and the partner API cannot work without an identity (the query is per
  user, the API per key): plain keeps their JWT / API-key check and drops only the limits.
Cache fragments (bench/cache-cold.toml, bench/cache-warm.toml) are merged over the mobile
config for the cold- and warm-cache scenarios.
"""

import copy
import json
import re
import tomllib

RATE_LIMIT = 100_000_000  # per rule or quota and period: checked on every request, never reached

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def load_toml(path):
    with open(path, "rb") as f:
        return tomllib.load(f)


def dump_toml(doc):
    """TOML for the subset configs use: tables, arrays of tables, strings, numbers, booleans
    and arrays of scalars."""
    out = []
    _dump_table(doc, [], out)
    return "\n".join(out).strip() + "\n"


def _key(k):
    return k if _BARE_KEY.match(k) else json.dumps(k)


def _value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _is_table_array(v):
    return isinstance(v, list) and v and all(isinstance(x, dict) for x in v)


def _dump_table(table, path, out):
    for k, v in table.items():
        if not isinstance(v, dict) and not _is_table_array(v):
            out.append(f"{_key(k)} = {_value(v)}")
    for k, v in table.items():
        sub = path + [_key(k)]
        if isinstance(v, dict):
            out.append(f"\n[{'.'.join(sub)}]")
            _dump_table(v, sub, out)
        elif _is_table_array(v):
            for item in v:
                out.append(f"\n[[{'.'.join(sub)}]]")
                _dump_table(item, sub, out)


def merge(base, overlay):
    """`overlay` deep-merged over a copy of `base` (tables merge, anything else replaces)."""
    out = copy.deepcopy(base)
    for k, v in overlay.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


NO_SHEDDING = {"initial_limit": 1024, "min_limit": 1024}


# Overlay: the runtime the shipped configs do not use (they default to work stealing).
THREAD_PER_CORE = {"server": {"runtime": "thread-per-core"}}


def gateway(shipped, port, production, proxy_auth_none=False, overlay=None):
    """A bench config from a shipped one: listening on `port`, limits raised (production) or
    dropped (plain)."""
    doc = merge(shipped, overlay or {})
    doc.setdefault("server", {})["listen"] = f"127.0.0.1:{port}"
    # Several gateways run side by side: each admin listener on a port of its own. No access
    # log, as nginx and HAProxy run without one.
    doc.setdefault("admin", {})["listen"] = "127.0.0.1:0"
    doc.setdefault("log", {})["access_log"] = False
    # The throughput scenarios measure what serving costs, so nothing they send is shed (a
    # refusal costs less than an answer and would flatter the numbers): admission control
    # runs with a floor above any of their connection counts. The overload scenario drops it.
    doc.setdefault("admission", {}).update(NO_SHEDDING)
    if production:
        limits = doc.get("rate_limit", {})
        for limit in limits.get("rules", []) + limits.get("quotas", []):
            limit["limit"] = RATE_LIMIT
    else:
        doc.pop("rate_limit", None)
        if proxy_auth_none:
            for route in doc.get("routes", []):
                route["auth"] = "none"
                route.pop("scopes", None)
    return doc


def nginx(workdir, port, upstream_port):
    """nginx as a production reverse proxy of /api/users/ -> users /users/ (upstream
    keepalive, HTTP/1.1 to the upstream, one worker per core, no access log)."""
    return f"""# nginx as the benchmark runs it: reverse proxy of /api/users/{{id}} -> users /users/{{id}}.
daemon off;
worker_processes auto;
worker_rlimit_nofile 16384;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;

events {{
    worker_connections 8192;
}}

http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65s;
    client_body_temp_path {workdir}/nginx-tmp/body;
    proxy_temp_path {workdir}/nginx-tmp/proxy;
    fastcgi_temp_path {workdir}/nginx-tmp/fastcgi;
    uwsgi_temp_path {workdir}/nginx-tmp/uwsgi;
    scgi_temp_path {workdir}/nginx-tmp/scgi;

    upstream users {{
        server 127.0.0.1:{upstream_port};
        keepalive 64;
    }}

    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location /api/users/ {{
            proxy_pass http://users/users/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
}}
"""


def haproxy(port, upstream_port):
    """HAProxy as a production reverse proxy of the same route (threads = cores by default,
    keep-alive and connection reuse on both sides, no logging)."""
    return f"""# HAProxy as the benchmark runs it: reverse proxy of /api/users/{{id}} -> users /users/{{id}}.
global
    maxconn 8000

defaults
    mode http
    option http-keep-alive
    option forwardfor
    http-reuse safe
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s

frontend bench
    bind 127.0.0.1:{port}
    default_backend users

backend users
    http-request replace-path /api/users/(.*) /users/\\1
    server users 127.0.0.1:{upstream_port}
"""
