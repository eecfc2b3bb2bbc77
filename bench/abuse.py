"""What hostile clients cost slpocapp, measured: RSS, CPU, threads, and how fast
/metrics still answers, second by second.

usage: abuse.py BINARY [SECONDS]

Scenarios, each against a fresh process on 127.0.0.1:
  flood     one client pipelines GET / as fast as it can and never reads an answer
  idle      500 connections opened and held without sending anything
  endless   one client sends a header line that never ends, 1 MiB/s
  bodies    200 clients a second each declare a body of a petabyte and leave
"""
import os
import socket
import subprocess
import sys
import threading
import time

BINARY = sys.argv[1]
SECONDS = int(sys.argv[2]) if len(sys.argv) > 2 else 6
TICKS = os.sysconf("SC_CLK_TCK")


def start():
    p = subprocess.Popen([BINARY, "--bind", "127.0.0.1", "--port", "0"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
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


def flood(port, stop):
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 256
    try:
        s = socket.create_connection(("127.0.0.1", port))
        s.settimeout(0.2)
        while not stop.is_set():
            try:
                s.sendall(request)
            except socket.timeout:
                pass
    except OSError:
        pass


def idle(port, stop):
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(500)]
    stop.wait()
    for s in held:
        s.close()


def endless(port, stop):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET / HTTP/1.1\r\nX-Endless: ")
    chunk = b"a" * (64 * 1024)
    while not stop.is_set():
        try:
            for _ in range(16):  # 1 MiB a second
                s.sendall(chunk)
        except OSError:
            return
        stop.wait(1)


def bodies(port, stop):
    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000000\r\n\r\n"
    while not stop.is_set():
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", port)) as s:
                    s.sendall(request)
            except OSError:
                pass
        stop.wait(1)


def run(name, attack):
    p, port = start()
    time.sleep(0.3)
    rows = []
    base_cpu = cpu_seconds(p.pid)
    rows.append((0, status(p.pid, "VmRSS"), status(p.pid, "Threads"), 0.0, scrape_ms(port)))
    stop = threading.Event()
    t = threading.Thread(target=attack, args=(port, stop), daemon=True)
    t.start()
    for second in range(1, SECONDS + 1):
        time.sleep(1)
        rows.append((second, status(p.pid, "VmRSS"), status(p.pid, "Threads"), cpu_seconds(p.pid) - base_cpu, scrape_ms(port)))
    stop.set()
    time.sleep(0.5)
    after = scrape_ms(port)
    p.terminate()
    p.wait(5)
    print(f"\n{name}: " + __doc__.split(name, 1)[1].split("\n", 1)[0].strip())
    print("| s | RSS | threads | CPU s used | /metrics ms |")
    print("|---|---|---|---|---|")
    for second, rss, threads, cpu, ms in rows:
        shown = "no answer" if ms is None else f"{ms:.1f}"
        print(f"| {second} | {rss / 1024:.1f} MiB | {threads} | {cpu:.2f} | {shown} |")
    print(f"after the attack stopped: /metrics {'no answer' if after is None else f'{after:.1f} ms'}; exit code {p.returncode}")


ONLY = os.environ.get("ONLY")
for name, attack in [("flood", flood), ("idle", idle), ("endless", endless), ("bodies", bodies)]:
    if ONLY and name != ONLY:
        continue
    run(name, attack)
