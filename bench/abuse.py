"""What hostile clients can still cost slpocapp, measured: RSS, threads, CPU, and
how fast a well-behaved client is answered (/metrics, a fresh connection each
time), second by second, during each attack and after it.

usage: abuse.py BINARY [SECONDS]      (SECONDS per attack, default 12)
       ONLY=slowloris abuse.py BINARY

Scenarios, each against a fresh slpocapp on 127.0.0.1:
  slowloris  1000 clients each send a request head one byte a second
  endless    one client sends a header line that never ends, 1 MiB a second
  flood      one client pipelines GET / as fast as it can and never reads an answer
  idle       10000 connections opened and held without sending anything (--max-connections 11000)
  bodies     200 clients a second each declare a body of a petabyte and leave
  partial    2000 clients each send 60 KiB of a 64 KiB body and wait
"""
import os
import resource
import selectors
import socket
import subprocess
import sys
import threading
import time

BINARY = sys.argv[1]
SECONDS = int(sys.argv[2]) if len(sys.argv) > 2 else 12
TICKS = os.sysconf("SC_CLK_TCK")
HEAD = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow\r\nX-Padding: " + b"p" * 64 + b"\r\n\r\n"


def raise_nofile(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, wanted), hard), hard))


def start(extra):
    p = subprocess.Popen([BINARY, "--bind", "127.0.0.1", "--port", "0", *extra],
                         stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    line = p.stderr.readline().decode()
    port = int(line.split("listening on ")[1].split(" ")[0].rsplit(":", 1)[1])
    return p, port


def status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def scrape_ms(port):
    """Milliseconds for a whole GET /metrics on a new connection, None if it failed."""
    started = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        ok = data.startswith(b"HTTP/1.1 200")
    except OSError:
        ok = False
    return (time.perf_counter() - started) * 1000 if ok else None


class Held:
    """Client sockets that the attack holds, and what became of them."""

    def __init__(self):
        self.opened = 0
        self.closed_by_server = 0
        self.statuses = {}
        self.close_times = []
        self.lock = threading.Lock()

    def closed(self, answer, elapsed):
        with self.lock:
            self.closed_by_server += 1
            code = answer[9:12].decode(errors="replace") if answer.startswith(b"HTTP/1.1 ") else "none"
            self.statuses[code] = self.statuses.get(code, 0) + 1
            self.close_times.append(elapsed)

    def summary(self):
        times = sorted(self.close_times)
        text = f"{self.opened} opened, {self.closed_by_server} closed by the server"
        if self.statuses:
            text += " (answers: " + ", ".join(f"{k} x{v}" for k, v in sorted(self.statuses.items())) + ")"
        if times:
            text += f", closed {times[0]:.1f}-{times[-1]:.1f} s after their first byte (median {times[len(times) // 2]:.1f})"
        return text


def watch(sockets, held, stop, feed=None, every=1.0):
    """Reads from the held sockets until they close; calls feed(sock) every `every` s."""
    sel = selectors.DefaultSelector()
    started = {}
    for s in sockets:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, b"")
        started[s] = time.monotonic()
    next_feed = time.monotonic()
    while not stop.is_set() and sel.get_map():
        if feed and time.monotonic() >= next_feed:
            for key in list(sel.get_map().values()):
                try:
                    feed(key.fileobj)
                except OSError:
                    pass
            next_feed += every
        for key, _ in sel.select(timeout=0.1):
            s = key.fileobj
            try:
                chunk = s.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                chunk = b""
            if chunk:
                sel.modify(s, selectors.EVENT_READ, key.data + chunk)
                continue
            held.closed(key.data, time.monotonic() - started[s])
            sel.unregister(s)
            s.close()
    for key in list(sel.get_map().values()):
        key.fileobj.close()


def open_many(port, n, held):
    sockets = []
    for _ in range(n):
        try:
            sockets.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            held.opened += 1
        except OSError:
            break
    return sockets


def slowloris(port, stop, held):
    sockets = open_many(port, 1000, held)
    position = {}

    def feed(s):
        i = position.get(s, 0)
        if i < len(HEAD):
            s.send(HEAD[i:i + 1])
            position[s] = i + 1

    watch(sockets, held, stop, feed)


def endless(port, stop, held):
    s = socket.create_connection(("127.0.0.1", port))
    held.opened += 1
    started = time.monotonic()
    s.sendall(b"GET / HTTP/1.1\r\nX-Endless: ")
    chunk = b"a" * (64 * 1024)
    answer = b""
    while not stop.is_set():
        try:
            for _ in range(16):  # 1 MiB a second
                s.sendall(chunk)
        except OSError:
            break
        stop.wait(1)
    try:
        s.settimeout(1)
        answer = s.recv(4096)
    except OSError:
        pass
    held.closed(answer, time.monotonic() - started)
    s.close()


def flood(port, stop, held):
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 256
    s = socket.create_connection(("127.0.0.1", port))
    held.opened += 1
    s.settimeout(0.2)
    sent = 0
    while not stop.is_set():
        try:
            sent += s.send(request)
        except socket.timeout:
            pass
        except OSError:
            break
    held.statuses[f"requests sent before the server stopped reading: {sent // 27}"] = 1
    s.close()


def idle(port, stop, held):
    sockets = open_many(port, 10000, held)
    watch(sockets, held, stop)


def bodies(port, stop, held):
    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000000\r\n\r\n"
    while not stop.is_set():
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                    held.opened += 1
                    s.sendall(request)
                    answer = s.recv(64)
                    held.closed(answer, 0.0)
            except OSError:
                pass
        stop.wait(1)


def partial(port, stop, held):
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n\r\n"
    sockets = open_many(port, 2000, held)
    for s in sockets:
        try:
            s.sendall(head + b"b" * (60 * 1024))
        except OSError:
            pass
    watch(sockets, held, stop)


SCENARIOS = {
    "slowloris": (slowloris, []),
    "endless": (endless, []),
    "flood": (flood, []),
    "idle": (idle, ["--max-connections", "11000"]),
    "bodies": (bodies, []),
    "partial": (partial, ["--max-connections", "11000"]),
}


def run(name):
    attack, extra = SCENARIOS[name]
    p, port = start(extra)
    time.sleep(0.3)
    rows = []
    base_cpu = cpu_seconds(p.pid)
    rows.append((0, status(p.pid, "VmRSS"), status(p.pid, "Threads"), 0.0, scrape_ms(port)))
    stop = threading.Event()
    held = Held()
    t = threading.Thread(target=attack, args=(port, stop, held), daemon=True)
    t.start()
    for second in range(1, SECONDS + 1):
        time.sleep(1)
        rows.append((second, status(p.pid, "VmRSS"), status(p.pid, "Threads"),
                     cpu_seconds(p.pid) - base_cpu, scrape_ms(port)))
    peak = status(p.pid, "VmHWM")
    stop.set()
    t.join(10)
    time.sleep(0.5)
    after = scrape_ms(port)
    p.terminate()
    p.wait(5)
    print(f"\n{name}: " + __doc__.split("  " + name, 1)[1].split("\n", 1)[0].strip())
    print()
    print("| s | RSS | threads | CPU s used | /metrics ms |")
    print("|---|---|---|---|---|")
    for second, rss, threads, cpu, ms in rows:
        shown = "no answer" if ms is None else f"{ms:.1f}"
        print(f"| {second} | {rss / 1024:.1f} MiB | {threads} | {cpu:.2f} | {shown} |")
    print()
    print(f"peak RSS {peak / 1024:.1f} MiB; attack: {held.summary()}")
    print(f"after the attack stopped: /metrics {'no answer' if after is None else f'{after:.1f} ms'}; exit code {p.returncode}")
    sys.stdout.flush()


raise_nofile(12000)
ONLY = os.environ.get("ONLY")
for scenario in SCENARIOS:
    if not ONLY or scenario in ONLY.split(","):
        run(scenario)
