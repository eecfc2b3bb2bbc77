"""Starts a server command and prints how many milliseconds passed until its first
answered GET /metrics (polling as fast as the connection attempts allow), then
leaves it running and prints its PID on a second line.

usage: first_scrape.py PORT COMMAND [ARG...]
"""
import socket
import subprocess
import sys
import time

port = int(sys.argv[1])
request = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
started = time.perf_counter()
process = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
deadline = started + 30
while time.perf_counter() < deadline:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(request)
            if s.recv(12).startswith(b"HTTP/1.1 200") or s.recv(12).startswith(b"HTTP/1.0 200"):
                print(f"{(time.perf_counter() - started) * 1000:.2f}")
                print(process.pid)
                sys.exit(0)
    except OSError:
        pass
process.kill()
sys.exit("no answer within 30 s")
