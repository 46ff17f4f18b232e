"""Processes the benchmark starts, and what /proc says about them.

Every process is started in a session (and so a process group) of its own; stopping one
signals that group by its id, so a server's workers (nginx, node:cluster) go with it. The
`Processes` registry stops everything it started, in reverse order, also on Ctrl-C.
CPU time and memory are read from /proc for the whole group: a master and its workers count
as one contender.
"""

import http.client
import os
import signal
import socket
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


class Proc:
    def __init__(self, name, argv, log_path, env=None, cwd=None):
        self.name = name
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.started = time.monotonic()
        self.popen = subprocess.Popen(
            argv, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True)
        self.pid = self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def tail(self, n=2000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self, grace=10.0):
        """SIGTERM to the group, SIGKILL to the group after `grace` seconds."""
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(timeout=5)
        # Workers left in the group after their master exited (should not happen).
        for pid in group_pids(self.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()


class Processes:
    """Everything the run started; `stop_all` stops it, last started first."""

    def __init__(self):
        self.procs = []

    def start(self, *args, **kwargs):
        proc = Proc(*args, **kwargs)
        self.procs.append(proc)
        return proc

    def stop(self, proc):
        proc.stop()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self):
        while self.procs:
            self.procs.pop().stop()


def group_pids(pgid):
    """The live processes of process group `pgid`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _stat_fields(int(entry))
        if stat and int(stat[2]) == pgid:
            pids.append(int(entry))
    return pids


def _stat_fields(pid):
    """/proc/PID/stat fields after the command name (field 3, state, is index 0)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def cpu_seconds(pgid):
    """utime + stime of every live process in the group, in seconds."""
    return sum(cpu_split(pgid))


def cpu_split(pgid):
    """(utime, stime) of every live process in the group, in seconds: user space and kernel
    apart (on loopback the kernel's share is most of a proxy's cost)."""
    user = system = 0
    for pid in group_pids(pgid):
        stat = _stat_fields(pid)
        if stat:
            user += int(stat[11])  # field 14: utime
            system += int(stat[12])  # field 15: stime
    return user / CLK_TCK, system / CLK_TCK


def settle(pgids, deadline_s=15.0, window_s=0.2, busy_fraction=0.05):
    """Waits until the groups are idle (together under `busy_fraction` of one core over a
    `window_s` window): a server still working off the requests queued by the previous
    measurement would otherwise steal the cores from the next. Returns the seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        before = sum(cpu_seconds(p) for p in pgids)
        time.sleep(window_s)
        if sum(cpu_seconds(p) for p in pgids) - before < busy_fraction * window_s:
            break
    return time.monotonic() - start


def _status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mib(pgid):
    """Current resident memory of the group (VmRSS summed), MiB."""
    return sum(_status_kib(p, "VmRSS") for p in group_pids(pgid)) / 1024


def peak_rss_mib(pgid):
    """Peak resident memory of the group (VmHWM summed over its processes), MiB."""
    return sum(_status_kib(p, "VmHWM") for p in group_pids(pgid)) / 1024


def http_request(port, method, path, body=None, headers=None, timeout=5.0):
    """(status, body bytes); raises OSError when nothing answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_until(what, check, deadline_s, proc=None, interval=0.005):
    """Polls `check()` until it is true; raises with `what` (and the process log) past the
    deadline or when `proc` died."""
    until = time.monotonic() + deadline_s
    while time.monotonic() < until:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{what}: {proc.name} exited with {proc.popen.returncode}\n"
                               f"{proc.tail()}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(interval)
    tail = f"\n{proc.tail()}" if proc is not None else ""
    raise RuntimeError(f"{what}: not within {deadline_s} s{tail}")


def status_is(port, path, expected=200, method="GET", headers=None):
    return lambda: http_request(port, method, path, headers=headers, timeout=1.0)[0] == expected


def port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def open_connections(port, count, request, deadline_s=30.0):
    """Opens `count` keep-alive connections, sends `request` (bytes) on each and waits for the
    first bytes of its answer; returns the sockets (the caller closes them)."""
    socks = []
    until = time.monotonic() + deadline_s
    try:
        for _ in range(count):
            if time.monotonic() > until:
                raise RuntimeError(f"opening {count} connections took over {deadline_s} s")
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            socks.append(s)
            s.sendall(request)
            if not s.recv(65536):
                raise RuntimeError(f"port {port} closed a fresh connection")
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks
