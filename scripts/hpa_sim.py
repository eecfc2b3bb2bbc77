#!/usr/bin/env python3
"""The scaling loop closed on one machine (scripts/hpa-sim.sh runs it).

Real parts: slpocapp processes as the pods (127.0.0.1, a port each, POD_NAME
and POD_NAMESPACE as the downward API sets them), a real Prometheus that finds
them through file_sd_configs (rewritten whenever the pod set changes, with the
role-pod meta labels Kubernetes service discovery would give, relabelled by the
shipped scrape job), and prometheus-adapter's metricsQuery filled from
manifests/adapter/values.yaml and evaluated through Prometheus' HTTP API.
Modelled parts: the HPA controller (scripts/hpa_model.py, Kubernetes v1.30),
the Deployment's ReplicaSet (which pods to create and delete), the kubelet
(readiness probe, preStop sleep, SIGTERM, terminationGracePeriodSeconds) and
the Service (round robin over the ready pods that are not terminating).

Time: one speed factor divides every interval of the story: the scrape
interval and timeout, the adapter's rate() window, the HPA's 15 s sync period,
the stabilization windows and policy periods, the probe period, the preStop
sleep, the grace period and the load phases. Everything is reported in
cluster seconds (real seconds x speed).

Rates: the load schedule is in requests per cluster second. With time running
SPEED times faster, a cluster second lasts 1/SPEED real seconds, so R req/s of
cluster time are sent as R x SPEED req/s of real time; Prometheus' rate() is
per real second, so the adapter's value, in requests per cluster second, is
Prometheus' value / SPEED.

Usage (from the repository root; scripts/hpa-sim.sh passes the binaries):
  scripts/hpa_sim.py --slpocapp PATH [--prometheus PATH] [--speed 15] [--out target/hpa-sim] [--keep-tmp]

Prints the timeline, checks the story's scenarios (ok/FAIL lines), writes
OUT/hpa-sim.svg, OUT/hpa-sim-timeline.txt and OUT/hpa-sim.json, and exits 1 if
a check failed. README.md (The scaling loop on one machine) explains the story and its times.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import queue
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hpa_model as hm  # noqa: E402
import manifests as mf  # noqa: E402

NAMESPACE = "default"


# --------------------------------------------------------------------------
# The story: load phases in cluster seconds and requests per cluster second


@dataclass(frozen=True)
class Phase:
    name: str
    rate: float      # total requests per cluster second, over all ready pods
    seconds: float   # cluster seconds


def default_story(target: float) -> list[Phase]:
    """The seed's load and two others, for the HPA in manifests/hpa.yaml.

    Lengths are multiples of the 15 s sync period, so each load change falls
    on a sync; they leave room for what the behavior allows (README.md (The scaling loop on one machine)
    derives the times)."""
    return [
        Phase("warm-up", 0.0, 60),
        # The seed's: 20 req/s in all, target 2 per pod: wants 10 pods, max 6.
        Phase("seed load", 20.0, 150),
        # 3.5 x the target: ceil(7 / 2) = 4 pods, where the ratio 7 / (4 x 2) =
        # 0.875 is outside the tolerance yet ceil(0.875 x 4) = 4: a fixed point.
        Phase("needs 4", 3.5 * target, 540),
        Phase("no load", 0.0, 240),
    ]


def phase_starts(story: list[Phase]) -> list[float]:
    out, t = [], 0.0
    for p in story:
        out.append(t)
        t += p.seconds
    return out


def load_at(story: list[Phase], t: float) -> float:
    for start, p in zip(phase_starts(story), story):
        if start <= t < start + p.seconds:
            return p.rate
    return 0.0


def requests_due(story: list[Phase], t: float) -> float:
    """Requests the schedule asks for in cluster seconds [0, t]."""
    total = 0.0
    for start, p in zip(phase_starts(story), story):
        total += p.rate * max(0.0, min(t, start + p.seconds) - start)
    return total


# --------------------------------------------------------------------------
# The clock


class Clock:
    def __init__(self, speed: float):
        self.speed = speed
        self.t0 = time.monotonic()

    def now(self) -> float:
        """Cluster seconds since the story started (negative during the setup)."""
        return (time.monotonic() - self.t0) * self.speed

    def start_story(self) -> None:
        self.t0 = time.monotonic()

    def real(self, cluster_seconds: float) -> float:
        return cluster_seconds / self.speed

    def sleep_until(self, t: float, stop: threading.Event | None = None) -> None:
        while True:
            left = self.real(t - self.now())
            if left <= 0:
                return
            if stop is not None and stop.wait(min(left, 0.05)):
                return
            elif stop is None:
                time.sleep(min(left, 0.05))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# The Deployment's pods


@dataclass
class PodRecord:
    name: str
    port: int
    created: float
    listening: float | None = None
    ready_at: float | None = None
    first_value: float | None = None
    deleted: float | None = None
    sigterm: float | None = None
    exited: float | None = None
    exit_code: int | None = None
    killed: bool = False
    served_while_terminating: int = 0
    log: str = ""


class Pod:
    """One slpocapp process and what the kubelet does with it."""

    def __init__(self, sim: "Sim", name: str):
        self.sim, self.name = sim, name
        self.phase = "Pending"
        self.ready = False
        self.deleting = False
        self.gone = False
        self.port = free_port()
        self.rec = PodRecord(name, self.port, sim.clock.now())
        self.log_path = sim.tmp / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self.thread = threading.Thread(target=self.run, name=f"kubelet {name}", daemon=True)

    def start(self) -> None:
        env = dict(os.environ)
        env.update(self.sim.container_env)
        env.update({"POD_NAME": self.name, "POD_NAMESPACE": NAMESPACE})
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([str(self.sim.binary), "--bind", "127.0.0.1", "--port", str(self.port)],
                                         env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        self.thread.start()

    def run(self) -> None:
        sim, clock = self.sim, self.sim.clock
        # Pending until the container runs and listens.
        deadline = time.monotonic() + 5
        while not re.search(r"listening on 127\.0\.0\.1:\d+", self.log_path.read_text()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                sim.fatal(f"pod {self.name} did not start: {self.log_path.read_text().strip()}")
                return
            time.sleep(0.005)
        self.phase = "Running"
        self.rec.listening = clock.now()
        sim.pods_changed()
        # The readiness probe: at once, then every periodSeconds; Ready after
        # successThreshold successes in a row, not Ready after failureThreshold
        # failures in a row.
        probe = sim.probe
        ok_run = fail_run = 0
        first = True
        while not self.deleting and not sim.stopping.is_set():
            if not first and sim.stopping.wait(clock.real(probe["period"])):
                break
            first = False
            if self.deleting:
                break
            good = self.probe_once(probe["timeout"])
            ok_run, fail_run = (ok_run + 1, 0) if good else (0, fail_run + 1)
            if not self.ready and ok_run >= probe["success"]:
                self.ready = True
                self.rec.ready_at = clock.now()
                sim.pods_changed()
            elif self.ready and fail_run >= probe["failure"]:
                self.ready = False
                sim.pods_changed()
        if sim.stopping.is_set() and not self.deleting:
            return
        self.terminate()

    def probe_once(self, timeout: float) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=timeout) as r:
                return r.status == 200
        except Exception:
            return False

    def delete(self) -> None:
        """The API server sets deletionTimestamp: the endpoints drop the pod,
        the kubelet starts the shutdown sequence (run() continues in terminate())."""
        if self.deleting:
            return
        self.deleting = True
        self.rec.deleted = self.sim.clock.now()
        self.sim.pods_changed()

    def terminate(self) -> None:
        """preStop sleep, SIGTERM, SIGKILL after terminationGracePeriodSeconds."""
        sim, clock = self.sim, self.sim.clock
        clock.sleep_until(self.rec.deleted + sim.prestop)
        self.rec.sigterm = clock.now()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=max(0.0, sim.grace_deadline_real(self.rec.deleted)))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
            self.rec.killed = True
        self.rec.exit_code = code
        self.rec.exited = clock.now()
        lines = self.log_path.read_text().strip().splitlines()
        self.rec.log = lines[-1] if lines else ""
        self.gone = True
        sim.pods_changed()

    def kill_now(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------
# The Service: round robin over the endpoints, one keep-alive connection per pod


@dataclass
class LoadStats:
    sent: int = 0
    ok: int = 0
    failed: int = 0
    no_endpoint: int = 0
    failures: list = field(default_factory=list)
    per_phase: dict = field(default_factory=dict)


class PodClient(threading.Thread):
    """Sends the requests routed to one pod over one keep-alive connection."""

    def __init__(self, load: "Load", pod: Pod):
        super().__init__(name=f"client {pod.name}", daemon=True)
        self.load, self.pod = load, pod
        self.q: queue.Queue = queue.Queue()

    def run(self) -> None:
        conn = None
        while True:
            item = self.q.get()
            if item is None:
                break
            phase = item
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.pod.port, timeout=5)
                conn.request("GET", "/")
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    raise RuntimeError(f"HTTP {r.status}")
                self.load.done(phase, self.pod, None)
            except Exception as e:
                if conn is not None:
                    conn.close()
                conn = None
                self.load.done(phase, self.pod, f"{type(e).__name__}: {e}")
        if conn is not None:
            conn.close()


class Load(threading.Thread):
    """Sends the story's schedule, spread round robin over the endpoints."""

    def __init__(self, sim: "Sim"):
        super().__init__(name="load", daemon=True)
        self.sim = sim
        self.stats = LoadStats()
        self.lock = threading.Lock()
        self.clients: dict[str, PodClient] = {}
        self.endpoints: list[Pod] = []
        self.rr = 0

    def set_endpoints(self, ready: list[Pod]) -> None:
        with self.lock:
            self.endpoints = list(ready)
            for p in ready:
                if p.name not in self.clients:
                    c = PodClient(self, p)
                    self.clients[p.name] = c
                    c.start()
            # A pod out of the endpoints gets no new requests; its client sends
            # what was already routed to it, then closes its connection.
            for name, c in list(self.clients.items()):
                if all(p.name != name for p in ready):
                    c.q.put(None)
                    del self.clients[name]

    def done(self, phase: str, pod: Pod, error: str | None) -> None:
        with self.lock:
            counts = self.stats.per_phase.setdefault(phase, [0, 0])
            if error is None:
                self.stats.ok += 1
                counts[0] += 1
                if pod.deleting:
                    pod.rec.served_while_terminating += 1
            else:
                self.stats.failed += 1
                counts[1] += 1
                self.stats.failures.append((self.sim.clock.now(), pod.name, error))

    def run(self) -> None:
        sim, clock, story = self.sim, self.sim.clock, self.sim.story
        starts = phase_starts(story)
        end = starts[-1] + story[-1].seconds
        while not sim.stopping.is_set():
            now = clock.now()
            due = int(requests_due(story, min(now, end)))
            while self.stats.sent < due:
                t = now
                phase = next((p.name for s, p in zip(starts, story) if s <= t < s + p.seconds), story[-1].name)
                with self.lock:
                    if not self.endpoints:
                        self.stats.no_endpoint += 1
                        self.stats.failed += 1
                        self.stats.failures.append((now, "-", "no ready endpoint"))
                    else:
                        pod = self.endpoints[self.rr % len(self.endpoints)]
                        self.rr += 1
                        self.clients[pod.name].q.put(phase)
                    self.stats.sent += 1
            if now >= end:
                break
            time.sleep(0.002)

    def stop(self) -> None:
        with self.lock:
            for c in self.clients.values():
                c.q.put(None)
            clients = list(self.clients.values())
            self.clients.clear()
        for c in clients:
            c.join(timeout=5)


# --------------------------------------------------------------------------
# Prometheus with file_sd


class Prometheus:
    def __init__(self, sim: "Sim", binary: str):
        self.sim = sim
        self.binary = binary
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.sd_file = sim.tmp / "pods.json"
        # Kubelet threads and the start write the file: one at a time.
        self.sd_lock = threading.Lock()
        self.job = self.scrape_job()
        self.proc: subprocess.Popen | None = None

    def scrape_job(self) -> dict:
        """The shipped job (its relabel_configs give the series the labels the
        ServiceMonitor route gives; check_consistency.py checks that the two
        agree), with the ServiceMonitor's interval and timeout scaled and
        kubernetes_sd_configs (role pod) replaced by a file the simulator
        writes with the same meta labels."""
        sim = self.sim
        job = dict(mf.scrape_job())
        ep = mf.load_yaml(mf.SERVICEMONITOR)["spec"]["endpoints"][0]
        self.interval = mf.parse_duration(ep.get("interval", job.get("scrape_interval", "1m")))
        self.timeout = mf.parse_duration(ep.get("scrapeTimeout", job.get("scrape_timeout", "10s")))
        if job.pop("kubernetes_sd_configs", None) is None:
            raise mf.ManifestError(f"{mf.SCRAPE_CONFIGS}: the job has no kubernetes_sd_configs to replace")
        job["scrape_interval"] = mf.format_duration(self.interval / sim.speed)
        job["scrape_timeout"] = mf.format_duration(self.timeout / sim.speed)
        # Prometheus watches the file (inotify); the refresh is a fallback.
        job["file_sd_configs"] = [{"files": [str(self.sd_file)], "refresh_interval": "1s"}]
        return job

    def target(self, pod: Pod) -> dict:
        """The labels role pod discovery gives the pod's port http."""
        sim = self.sim
        port = dict(sim.http_port, containerPort=pod.port)
        return mf.pod_target(self.job, sim.pod_labels, port, sim.container_name, ns=NAMESPACE, name=pod.name,
                             phase=pod.phase, address=f"127.0.0.1:{pod.port}", ready=pod.ready and not pod.deleting)

    def write_targets(self, pods: list[Pod], only_if_missing: bool = False) -> None:
        """Atomically (rename), as Prometheus' file_sd documentation asks."""
        groups = [mf.sd_target_group(self.target(p)) for p in pods]
        with self.sd_lock:
            if only_if_missing and self.sd_file.exists():
                return
            tmp = self.sd_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(groups, indent=1))
            os.replace(tmp, self.sd_file)

    def start(self) -> None:
        sim = self.sim
        iv = mf.format_duration(self.interval / sim.speed)
        config = {"global": {"scrape_interval": iv, "scrape_timeout": mf.format_duration(self.timeout / sim.speed),
                             "evaluation_interval": iv},
                  "scrape_configs": [self.job]}
        path = sim.tmp / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False, width=1000))
        self.write_targets([], only_if_missing=True)
        self.log = open(sim.tmp / "prometheus.log", "w")
        self.proc = subprocess.Popen([self.binary, f"--config.file={path}", f"--storage.tsdb.path={sim.tmp / 'tsdb'}",
                                      f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                                     stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except Exception:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Prometheus did not get ready: {(sim.tmp / 'prometheus.log').read_text()[-2000:]}")
            time.sleep(0.05)

    def api(self, path: str, **params) -> dict:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.load(r)
        if body.get("status") != "success":
            raise RuntimeError(f"{url}: {body}")
        return body["data"]

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc and self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


# --------------------------------------------------------------------------
# The simulation


@dataclass
class Row:
    """One HPA sync."""
    t: float
    phase: str
    load: float
    pods: int
    ready: int
    values: dict[str, float]   # per pod, requests per cluster second, as the HPA got them
    average: float | None
    raw: int | None
    desired: int
    replicas: int              # spec.replicas before the sync
    reason: str


class Sim:
    def __init__(self, args):
        self.speed = args.speed
        self.binary = Path(args.slpocapp)
        self.tmp = Path(tempfile.mkdtemp(prefix="hpa-sim."))
        self.keep_tmp = args.keep_tmp
        self.stopping = threading.Event()
        self.fatal_error: str | None = None
        self.lock = threading.RLock()
        self.rng = random.Random(args.seed)
        self.read_manifests()
        self.story = default_story(self.spec.target_milli / 1000)
        self.prom = Prometheus(self, args.prometheus)
        self.adapter_rule, _ = mf.adapter_rule_for(self.spec.metric)
        windows = mf.rate_windows(self.adapter_rule["metricsQuery"])
        if len(windows) != 1:
            raise mf.ManifestError(f"the adapter's metricsQuery must have one rate() range: {windows}")
        self.rate_window = mf.parse_duration(windows[0])
        self.pods: list[Pod] = []
        self.load = Load(self)
        self.rows: list[Row] = []
        self.notes: list[str] = []

    # -- the manifests
    def read_manifests(self) -> None:
        hpa = mf.load_yaml(mf.HPA)
        dep = mf.load_yaml(mf.DEPLOYMENT)
        self.spec = hm.Spec.from_hpa(hpa)
        self.hpa_name = hpa["metadata"]["name"]
        self.initial_replicas = int(dep["spec"].get("replicas", 1))
        tmpl = dep["spec"]["template"]
        self.pod_labels = tmpl["metadata"]["labels"]
        podspec = tmpl["spec"]
        c = podspec["containers"][0]
        self.container_name = c["name"]
        self.http_port = mf.container_port(c, "http")
        if self.http_port is None:
            raise mf.ManifestError(f"{mf.DEPLOYMENT}: no container port named http")
        # Plain env values (PORT, BIND_ADDRESS, WORK_MS, ...); --bind and --port win.
        self.container_env = {e["name"]: str(e["value"]) for e in c.get("env") or [] if "value" in e}
        rp = c.get("readinessProbe") or {}
        s = self.speed
        self.probe = {"period": rp.get("periodSeconds", 10),
                      # Timeouts bound the app's own (real-time) work: scaled, but
                      # never below 0.25 s of real time.
                      "timeout": max(rp.get("timeoutSeconds", 1) / s, 0.25),
                      "success": rp.get("successThreshold", 1), "failure": rp.get("failureThreshold", 3)}
        self.prestop = float((((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}).get("seconds", 0))
        self.grace = float(podspec.get("terminationGracePeriodSeconds", 30))
        self.rs_hash = "%06x" % (zlib.crc32(json.dumps(tmpl, sort_keys=True).encode()) & 0xFFFFFF)

    def grace_deadline_real(self, deleted: float) -> float:
        """Real seconds left for the process after SIGTERM: the scaled grace
        period, but at least the app's own stop deadline (under 1 s of real
        time) after the scaled preStop sleep."""
        c = self.clock
        scaled = c.real(deleted + self.grace - c.now())
        return max(scaled, c.real(deleted + self.prestop - c.now()) + 1.5)

    # -- the pod set
    def new_pod_name(self) -> str:
        alphabet = "bcdfghjklmnpqrstvwxz2456789"  # the ReplicaSet's name suffix alphabet
        return f"{self.hpa_name}-{self.rs_hash}-" + "".join(self.rng.choice(alphabet) for _ in range(5))

    def existing(self) -> list[Pod]:
        return [p for p in self.pods if not p.gone]

    def pods_changed(self) -> None:
        """A pod's phase, readiness or existence changed: the endpoints and the
        discovery file follow (the file only if what discovery shows changed)."""
        with self.lock:
            live = self.existing()
            ready = [p for p in live if p.ready and not p.deleting]
            self.load.set_endpoints(ready)
            # Role pod shows a pod once it has an address (here: once it
            # listens) until it is gone.
            self.prom.write_targets([p for p in live if p.phase == "Running"])

    def scale(self, replicas: int) -> None:
        """The ReplicaSet controller: create pods up to `replicas` active ones,
        or delete the surplus, ranked as the controller ranks them (pending
        first, then not ready, then the most recently created)."""
        with self.lock:
            active = [p for p in self.existing() if not p.deleting]
            for _ in range(replicas - len(active)):
                pod = Pod(self, self.new_pod_name())
                self.pods.append(pod)
                pod.start()
            surplus = len(active) - replicas
            if surplus > 0:
                ranked = sorted(active, key=lambda p: (p.phase == "Running", p.ready, -p.rec.created))
                for pod in ranked[:surplus]:
                    pod.delete()

    # -- the adapter and the HPA
    def adapter_values(self, pods: list[Pod]) -> tuple[str, dict[str, float]]:
        """What GET .../namespaces/default/pods/*/<metric> answers: the filled
        metricsQuery (rate window scaled) for the pods the HPA's selector
        lists, values per cluster second."""
        names = [p.name for p in pods]
        query = mf.fill_adapter(self.adapter_rule, NAMESPACE, names)
        query = mf.with_rate_window(query, mf.format_duration(self.rate_window / self.speed))
        result = self.prom.api("/api/v1/query", query=query)["result"]
        values = {}
        for r in result:
            pod = r["metric"].get(mf.resource_label(self.adapter_rule, "pod"))
            v = float(r["value"][1])
            if pod in names and math.isfinite(v):
                values[pod] = v / self.speed
        return query, values

    def run(self) -> None:
        spec = self.spec
        # Setup, before the story's clock starts: the Deployment's first pods,
        # Prometheus, and the adapter's first values for them (Prometheus
        # 2.42 applies discovery on 5 s real-time tickers, and rate() needs
        # two scrapes).
        self.clock = clock = Clock(self.speed)
        controller = hm.Controller(spec)
        replicas = self.initial_replicas
        self.scale(replicas)
        self.prom.start()
        deadline = time.monotonic() + 60
        while True:
            first = self.existing()
            if first and all(p.ready for p in first) and len(self.adapter_values(first)[1]) == len(first):
                break
            if self.fatal_error or self.stopping.is_set() or time.monotonic() > deadline:
                raise RuntimeError(self.fatal_error or "the first pods had no adapter value within 60 s of setup")
            time.sleep(0.1)
        self.setup_real = time.monotonic() - clock.t0
        clock.start_story()
        for p in first:
            p.rec.created = p.rec.listening = p.rec.ready_at = p.rec.first_value = 0.0
        self.load.start()
        starts = phase_starts(self.story)
        end = starts[-1] + self.story[-1].seconds
        sync = hm.SYNC_PERIOD
        k = 1
        self.query = None
        self.relabel_check = None
        while True:
            t = k * sync
            if t > end:
                break
            clock.sleep_until(t, self.stopping)
            if self.fatal_error or self.stopping.is_set():
                raise RuntimeError(self.fatal_error or "stopped")
            with self.lock:
                live = self.existing()
                view = [hm.Pod(p.name, p.phase, p.deleting, p.ready) for p in live]
            self.query, values = self.adapter_values(live) if live else ("", {})
            for p in live:
                if p.name in values and p.rec.first_value is None:
                    p.rec.first_value = t
            milli = {name: hm.milli(v) for name, v in values.items()}
            d = controller.sync(t, replicas, view, milli)
            phase = next((p.name for s, p in zip(starts, self.story) if s <= t < s + p.seconds), self.story[-1].name)
            self.rows.append(Row(t, phase, load_at(self.story, t), len(live), sum(p.ready and not p.deleting for p in live),
                                 values, d.usage_milli / 1000 if d.usage_milli is not None else None, d.raw, d.desired,
                                 replicas, d.reason))
            self.print_row(self.rows[-1])
            if self.relabel_check is None and live and all(p.name in values for p in live):
                self.relabel_check = self.compare_relabeling(live)
            if d.desired != replicas:
                replicas = d.desired
                self.scale(replicas)
            k += 1
        self.final_replicas = replicas

    def compare_relabeling(self, live: list[Pod]) -> tuple[bool, str, list[str]]:
        """The targets Prometheus built from the discovery file, against the
        shipped relabel_configs applied by scripts/manifests.py to the same
        meta labels."""
        active = [t for t in self.prom.api("/api/v1/targets", state="active")["activeTargets"]
                  if t["labels"].get("job") == self.prom.job["job_name"]]
        got = sorted((t["labels"] for t in active), key=lambda d: d.get("pod", ""))
        want = sorted((mf.relabel(self.prom.target(p), self.prom.job.get("relabel_configs") or [])
                       for p in live if p.phase == "Running"), key=lambda d: d.get("pod", ""))
        names = sorted(got[0]) if got else []
        return got == want and bool(got), f"Prometheus: {got}; simulated: {want}", names

    def fatal(self, msg: str) -> None:
        self.fatal_error = msg
        self.stopping.set()

    def shutdown(self) -> None:
        """Stop the load, then every pod gracefully (SIGTERM), then Prometheus."""
        self.stopping.set()
        if self.load.is_alive():
            self.load.join(timeout=5)
        self.load.stop()
        for p in self.existing():
            if p.proc is not None and p.proc.poll() is None:
                p.proc.send_signal(signal.SIGTERM)
        for p in self.pods:
            if p.proc is not None:
                try:
                    p.proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    p.kill_now()
        self.prom_exit = self.prom.stop()
        if self.keep_tmp:
            print(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- output
    def print_header(self) -> None:
        print(f"{'t':>5} {'phase':<10} {'load':>5} {'pods':>4} {'ready':>5}  {'per-pod metric (req/s, as the HPA got it)':<44}"
              f" {'avg':>5} {'target':>6} {'calc':>4} {'desired':>7} {'replicas':>8}", flush=True)

    def print_row(self, r: Row) -> None:
        print(self.format_row(r), flush=True)

    def format_row(self, r: Row) -> str:
        vals = " ".join(f"{v:.2f}" for _, v in sorted(r.values.items())) or "-"
        avg = f"{r.average:.2f}" if r.average is not None else "-"
        calc = str(r.raw) if r.raw is not None else "-"
        return (f"{r.t:5.0f} {r.phase:<10} {r.load:5.1f} {r.pods:4d} {r.ready:5d}  {vals:<44} {avg:>5}"
                f" {self.spec.target_milli / 1000:6g} {calc:>4} {r.desired:7d} {r.replicas:8d}")


# --------------------------------------------------------------------------
# The story's checks


class Checks:
    def __init__(self):
        self.failed = 0

    def check(self, cond: bool, msg: str, detail: str = "") -> bool:
        if cond:
            print(f"ok   {msg}")
        else:
            self.failed += 1
            print(f"FAIL {msg}{': ' + detail if detail else ''}")
        return cond


def scale_changes(rows: list[Row], lo: float, hi: float) -> list[tuple[float, int, int]]:
    return [(r.t, r.replicas, r.desired) for r in rows if lo <= r.t < hi and r.desired != r.replicas]


def paper_times(spec: hm.Spec, story: list[Phase], window: float, initial: int,
                sync: float = hm.SYNC_PERIOD) -> list[tuple[float, int, int]]:
    """The story on paper: the same controller model, fed at every sync with
    the ideal adapter value: the load averaged over the rate window, spread
    evenly over the pods, every pod counted at once. Returns the scale
    changes (time, from, to)."""
    ctrl = hm.Controller(spec)
    replicas, out = initial, []
    end = sum(p.seconds for p in story)
    steps = 200  # the window's mean by a fine sum
    k = 1
    while k * sync <= end:
        t = k * sync
        mean = sum(load_at(story, t - window + (i + 0.5) * window / steps) for i in range(steps)) / steps
        pods = [hm.Pod(f"p{i}") for i in range(replicas)]
        d = ctrl.sync(t, replicas, pods, {p.name: hm.milli(mean / replicas) for p in pods})
        if d.desired != replicas:
            out.append((t, replicas, d.desired))
            replicas = d.desired
        k += 1
    return out


def judge(sim: Sim) -> int:
    """The issue's four scenarios, on the run's rows."""
    spec, rows, story = sim.spec, sim.rows, sim.story
    starts = dict(zip((p.name for p in story), phase_starts(story)))
    phases = {p.name: p for p in story}
    c = Checks()
    ok_relabel, detail, names = sim.relabel_check or (False, "not compared", [])
    c.check(ok_relabel, "Prometheus relabelled the discovered pods as scripts/manifests.py simulates the shipped "
            f"relabel_configs (target labels {', '.join(names)})", detail)
    paper = paper_times(spec, story, sim.rate_window, sim.initial_replicas)
    up, down = spec.up, spec.down

    # Every scale-up within what the policies allow: at each sync, the count
    # is at most the best policy's limit from the count one period earlier.
    def count_at(t: float) -> int:
        before = [r for r in rows if r.t <= t]
        return before[-1].desired if before else sim.initial_replicas

    violations = []
    for r in rows:
        if r.desired > r.replicas and up.select != "Disabled":
            limits = []
            for p in up.policies:
                base = count_at(r.t - p.period)
                limits.append(base + p.value if p.type == "Pods" else math.ceil(base * (1 + p.value / 100)))
            allowed = max(limits) if up.select == "Max" else min(limits)
            if r.desired > allowed:
                violations.append((r.t, r.replicas, r.desired, allowed))
        if r.desired < r.replicas and down.select != "Disabled":
            limits = []
            for p in down.policies:
                base = count_at(r.t - p.period)
                limits.append(base - p.value if p.type == "Pods" else int(base * (1 - p.value / 100)))
            allowed = min(limits) if down.select == "Max" else max(limits)
            if r.desired < allowed:
                violations.append((r.t, r.replicas, r.desired, allowed))
    c.check(not violations and all(spec.min_replicas <= r.desired <= spec.max_replicas for r in rows),
            f"every scale step within the behavior policies and {spec.min_replicas}..{spec.max_replicas} replicas",
            str(violations))

    # (1) The seed's load: up to maxReplicas and no further, as fast as allowed.
    a0, a = starts["seed load"], phases["seed load"]
    seen = [r for r in rows if a0 <= r.t < a0 + a.seconds]
    t6 = next((r.t - a0 for r in seen if r.desired == spec.max_replicas), None)
    p6 = next((t - a0 for t, _, n in paper if a0 <= t < a0 + a.seconds and n == spec.max_replicas), None)
    steps = [f"{n0}->{n1} at {t - a0:.0f} s" for t, n0, n1 in scale_changes(rows, a0, a0 + a.seconds)]
    want = math.ceil(a.rate / (spec.target_milli / 1000))
    c.check(t6 is not None and max(r.desired for r in seen) == spec.max_replicas
            and max(r.raw or 0 for r in seen) >= spec.max_replicas,
            f"(1) {a.rate:g} req/s (wants ceil({a.rate:g} / {spec.target_milli / 1000:g}) = {want} pods) takes the "
            f"Deployment to maxReplicas {spec.max_replicas} and no further, {t6} s after the load starts "
            f"(paper {p6} s; {', '.join(steps)})")
    if t6 is not None and p6 is not None:
        c.check(t6 <= p6 + 2 * hm.SYNC_PERIOD, f"(1) ... within 2 syncs of the paper time ({t6:.0f} s vs {p6:.0f} s)")

    # (2) The load that needs 4: settles without oscillating.
    b0, b = starts["needs 4"], phases["needs 4"]
    need = math.ceil(b.rate / (spec.target_milli / 1000))
    changes = scale_changes(rows, b0, b0 + b.seconds)
    late = [ch for ch in changes if ch[0] >= b0 + b.seconds / 2]
    settled = count_at(b0 + b.seconds - 1)
    directions = {1 if n1 > n0 else -1 for _, n0, n1 in changes}
    paper_b = [(t - b0, n0, n1) for t, n0, n1 in paper if b0 <= t < b0 + b.seconds]
    c.check(settled == need and not late and len(directions) <= 1,
            f"(2) {b.rate:g} req/s settles at {need} pods without oscillating: steps "
            + (", ".join(f"{n0}->{n1} at {t - b0:.0f} s" for t, n0, n1 in changes) or "none")
            + f", none in the last half of the {b.seconds:.0f} s phase (paper: "
            + ", ".join(f"{n0}->{n1} at {t:.0f} s" for t, n0, n1 in paper_b) + ")",
            f"settled at {settled}, late changes {late}")

    # (3) No load: back to minReplicas, not before the stabilization window.
    c0, cph = starts["no load"], phases["no load"]
    changes = scale_changes(rows, c0, c0 + cph.seconds)
    first = changes[0][0] - c0 if changes else None
    t2 = next((t - c0 for t, _, n in changes if n == spec.min_replicas), None)
    paper_c = [(t - c0, n0, n1) for t, n0, n1 in paper if c0 <= t < c0 + cph.seconds]
    p2 = next((t for t, _, n in paper_c if n == spec.min_replicas), None)
    c.check(t2 is not None and first is not None and first >= down.stabilization,
            f"(3) without load back to minReplicas {spec.min_replicas}: first step down {first} s after the load "
            f"stops (stabilization window {down.stabilization:g} s), at {spec.min_replicas} after {t2} s (paper: "
            + ", ".join(f"{n0}->{n1} at {t:.0f} s" for t, n0, n1 in paper_c) + ")",
            f"steps {changes}")
    if t2 is not None and p2 is not None:
        c.check(p2 - hm.SYNC_PERIOD <= t2 <= p2 + 2 * hm.SYNC_PERIOD,
                f"(3) ... within a sync before and 2 after the paper time ({t2:.0f} s vs {p2:.0f} s)")

    # (4) No request lost, scale-down included.
    st = sim.load.stats
    stopped = [p.rec for p in sim.pods if p.rec.deleted is not None and p.rec.deleted < sum(x.seconds for x in story)]
    during = sum(r.served_while_terminating for r in stopped)
    under_load = [r for r in stopped if load_at(story, r.deleted) > 0]
    c.check(st.failed == 0 and st.ok == st.sent,
            f"(4) no request failed: {st.ok} of {st.sent} answered 200 over keep-alive connections; "
            f"{len(stopped)} pods stopped by the HPA ({len(under_load)} under load), which answered {during} requests "
            "after they left the endpoints",
            f"{st.failed} failed: {st.failures[:5]}")
    bad = [(r.name, r.exit_code, r.killed) for r in stopped if r.exit_code != 0 or r.killed]
    c.check(not bad and all(r.exited is not None for r in stopped),
            f"(4) every stopped pod exited 0 on SIGTERM after the preStop sleep ({sim.prestop:g} s), none killed at "
            f"terminationGracePeriodSeconds {sim.grace:g}", str(bad))
    sent_by_phase = {name: sum(v) for name, v in st.per_phase.items()}
    rate_ok = all(abs(sent_by_phase.get(p.name, 0) - p.rate * p.seconds) <= max(2, 0.01 * p.rate * p.seconds)
                  for p in story)
    c.check(rate_ok, "the load matched the schedule in every phase: "
            + ", ".join(f"{p.name} {sent_by_phase.get(p.name, 0)} requests = {sent_by_phase.get(p.name, 0) / p.seconds:.2f}"
                        f"/s (schedule {p.rate:g}/s)" for p in story))
    return c.failed


# --------------------------------------------------------------------------
# The picture (SVG written by hand)


def svg(sim: Sim) -> str:
    rows, story, spec = sim.rows, sim.story, sim.spec
    end = sum(p.seconds for p in story)
    w, h, ml, mr, mt, mb = 960, 440, 60, 60, 40, 90
    pw, ph = w - ml - mr, h - mt - mb
    ymax = max(p.rate for p in story) * 1.1 or 1
    rmax = spec.max_replicas + 1

    def x(t):
        return ml + pw * t / end

    def y(v):
        return mt + ph * (1 - v / ymax)

    def yr(n):
        return mt + ph * (1 - n / rmax)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{ml}" y="20" font-size="14">HPA simulation: manifests/hpa.yaml, real slpocapp pods and Prometheus, '
           f'speed {sim.speed:g}x (times in cluster seconds)</text>']
    # Phases.
    for i, (start, p) in enumerate(zip(phase_starts(story), story)):
        out.append(f'<line x1="{x(start):.1f}" y1="{mt}" x2="{x(start):.1f}" y2="{mt + ph}" stroke="#bbb" stroke-dasharray="2,3"/>')
        out.append(f'<text x="{x(start) + 4:.1f}" y="{mt + 14 + 14 * (i % 2)}" fill="#666">{p.name} ({p.rate:g}/s)</text>')
    # Axes and grid.
    out.append(f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    step = 5 if ymax > 10 else 1
    v = 0
    while v <= ymax:
        out.append(f'<line x1="{ml - 4}" y1="{y(v):.1f}" x2="{ml}" y2="{y(v):.1f}" stroke="#333"/>')
        out.append(f'<text x="{ml - 8}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
        v += step
    for n in range(0, rmax + 1):
        out.append(f'<line x1="{ml + pw}" y1="{yr(n):.1f}" x2="{ml + pw + 4}" y2="{yr(n):.1f}" stroke="#2a7"/>')
        out.append(f'<text x="{ml + pw + 8}" y="{yr(n) + 4:.1f}" fill="#2a7">{n}</text>')
    t = 0
    while t <= end:
        out.append(f'<line x1="{x(t):.1f}" y1="{mt + ph}" x2="{x(t):.1f}" y2="{mt + ph + 4}" stroke="#333"/>')
        out.append(f'<text x="{x(t):.1f}" y="{mt + ph + 18}" text-anchor="middle">{t:g}</text>')
        t += 60
    out.append(f'<text x="{ml + pw / 2}" y="{mt + ph + 36}" text-anchor="middle">cluster seconds</text>')
    out.append(f'<text x="16" y="{mt + ph / 2}" transform="rotate(-90 16 {mt + ph / 2})" text-anchor="middle">requests per second</text>')
    out.append(f'<text x="{w - 14}" y="{mt + ph / 2}" transform="rotate(90 {w - 14} {mt + ph / 2})" text-anchor="middle" '
               'fill="#2a7">replicas</text>')
    # Target.
    tv = spec.target_milli / 1000
    out.append(f'<line x1="{ml}" y1="{y(tv):.1f}" x2="{ml + pw}" y2="{y(tv):.1f}" stroke="#d33" stroke-dasharray="6,4"/>')
    # Total load (step).
    pts, prev = [], None
    for start, p in zip(phase_starts(story), story):
        if prev is not None:
            pts.append(f"{x(start):.1f},{y(prev):.1f}")
        pts.append(f"{x(start):.1f},{y(p.rate):.1f}")
        prev = p.rate
    pts.append(f"{x(end):.1f},{y(prev):.1f}")
    out.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="#36c" stroke-width="2"/>')
    # Per-pod rate as the HPA saw it.
    pts = [f"{x(r.t):.1f},{y(r.average):.1f}" for r in rows if r.average is not None]
    out.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="#e80" stroke-width="2"/>')
    for r in rows:
        if r.average is not None:
            out.append(f'<circle cx="{x(r.t):.1f}" cy="{y(r.average):.1f}" r="2" fill="#e80"/>')
    # Replicas (spec.replicas after each sync) and the pods in the Service
    # (ready and not terminating), both as steps.
    steps_desired = [(r.t, r.desired) for r in rows]
    changes = sorted([(p.rec.ready_at, 1) for p in sim.pods if p.rec.ready_at is not None]
                     + [(p.rec.deleted, -1) for p in sim.pods if p.rec.deleted is not None and p.rec.ready_at is not None])
    n, steps_ready = 0, []
    for t, d in changes:
        n += d
        steps_ready.append((t, n))
    for steps, first, color, width, dash in ((steps_desired, sim.initial_replicas, "#2a7", 2.5, ""),
                                             (steps_ready, 0, "#155", 1.2, ' stroke-dasharray="3,2"')):
        pts, last = [f"{x(0):.1f},{yr(first):.1f}"], first
        for t, val in steps:
            t = min(t, end)
            pts.append(f"{x(t):.1f},{yr(last):.1f}")
            pts.append(f"{x(t):.1f},{yr(val):.1f}")
            last = val
        pts.append(f"{x(end):.1f},{yr(last):.1f}")
        out.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="{color}" stroke-width="{width}"{dash}/>')
    # Legend.
    items = [("#36c", "", "total load (req/s)"), ("#e80", "", "per-pod rate as the HPA saw it (req/s)"),
             ("#d33", "6,4", f"target averageValue {tv:g}"), ("#2a7", "", "replicas (right axis)"),
             ("#155", "3,2", "pods in the Service (ready, not terminating)")]
    lx, ly = ml, h - 28
    for color, dash, label in items:
        width = 30 + 6.5 * len(label) + 16
        if lx + width > w - 10:
            lx, ly = ml, ly + 16
        out.append(f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 24}" y2="{ly - 4}" stroke="{color}" stroke-width="2"'
                   + (f' stroke-dasharray="{dash}"' if dash else "") + "/>")
        out.append(f'<text x="{lx + 30}" y="{ly}">{label}</text>')
        lx += width
    out.append("</svg>")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slpocapp", required=True, help="the slpocapp binary")
    ap.add_argument("--prometheus", default="prometheus", help="the Prometheus server binary")
    ap.add_argument("--speed", type=float, default=15.0, help="cluster seconds per real second (1: real time)")
    ap.add_argument("--out", default="target/hpa-sim", help="directory for the picture and the timeline")
    ap.add_argument("--seed", type=int, default=1, help="seed of the pod names")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the pods' logs and Prometheus' data")
    args = ap.parse_args()
    if args.speed <= 0:
        ap.error("--speed must be positive")
    sim = Sim(args)
    story_s = sum(p.seconds for p in sim.story)
    print(f"hpa-sim: {mf.HPA} (min {sim.spec.min_replicas}, max {sim.spec.max_replicas}, {sim.spec.metric} "
          f"AverageValue {sim.spec.target_milli / 1000:g}), tolerance {hm.TOLERANCE}, sync every {hm.SYNC_PERIOD:g} s; "
          f"speed {args.speed:g}: {story_s:.0f} cluster s in {story_s / args.speed:.0f} real s")
    print(f"  scrape every {sim.prom.interval:g} s (timeout {sim.prom.timeout:g} s), adapter rate window "
          f"{sim.rate_window:g} s, readiness probe every {sim.probe['period']:g} s, preStop {sim.prestop:g} s, "
          f"grace {sim.grace:g} s; as real time: /{args.speed:g}")
    print("  story: " + ", ".join(f"{p.name} {p.rate:g} req/s for {p.seconds:g} s" for p in sim.story)
          + f" (sent at x{args.speed:g} real req/s)")
    failed = 1
    interrupted = []
    signal.signal(signal.SIGTERM, lambda *_: (interrupted.append(1), sim.stopping.set()))
    try:
        sim.print_header()
        sim.run()
        failed = 0
    except KeyboardInterrupt:
        print("FAIL interrupted")
    except Exception as e:  # a broken part: report it, stop everything
        print(f"FAIL the simulation stopped: {type(e).__name__}: {e}")
    finally:
        sim.shutdown()
    if failed or interrupted:
        return 1
    print(f"\nsetup before the story: {sim.setup_real:.1f} s real (the first pods, Prometheus, their first adapter values)")
    lags = [p.rec.first_value - p.rec.created for p in sim.pods if p.rec.first_value is not None and p.rec.created > 0]
    if lags:
        print(f"new pods: first adapter value {min(lags):.0f}..{max(lags):.0f} cluster s after creation "
              f"({min(lags) / sim.speed:.1f}..{max(lags) / sim.speed:.1f} s real)")
    print(f"adapter query (last sync): {sim.query}")
    print("pods (cluster s): " + "; ".join(
        f"{p.rec.name} created {p.rec.created:.0f}, ready {_f(p.rec.ready_at)}, first value {_f(p.rec.first_value)}"
        + (f", deleted {p.rec.deleted:.0f}, SIGTERM {_f(p.rec.sigterm)}, exit {p.rec.exit_code}" if p.rec.deleted is not None else "")
        for p in sim.pods))
    failed = judge(sim)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "hpa-sim.svg").write_text(svg(sim))
    (out / "hpa-sim-timeline.txt").write_text("\n".join(sim.format_row(r) for r in sim.rows) + "\n")
    (out / "hpa-sim.json").write_text(json.dumps({
        "speed": sim.speed, "story": [p.__dict__ for p in sim.story],
        "rows": [r.__dict__ for r in sim.rows], "pods": [p.rec.__dict__ for p in sim.pods],
        "paper": paper_times(sim.spec, sim.story, sim.rate_window, sim.initial_replicas)}, indent=1, default=str))
    print(f"wrote {out / 'hpa-sim.svg'}, {out / 'hpa-sim-timeline.txt'}, {out / 'hpa-sim.json'}")
    print(f"hpa-sim: {'all checks passed' if not failed else f'{failed} checks failed'}")
    return 1 if failed else 0


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


if __name__ == "__main__":
    sys.exit(main())
