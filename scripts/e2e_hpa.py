#!/usr/bin/env python3
"""Helper of scripts/e2e-hpa.sh: the parts that read manifests/ and talk to
Prometheus' HTTP API. Run from the repository root (e2e-hpa.sh does).

Subcommands:

  config OUT PORT_A POD_A PORT_B POD_B
        write OUT, a prometheus.yml whose one job mirrors the ServiceMonitor
        and manifests/prometheus/additional-scrape-configs.yaml, with static
        targets on 127.0.0.1 carrying the meta labels Kubernetes SD (role pod)
        would give the two pods, plus two decoy targets the relabeling must drop
  wait URL TIMEOUT POD...
        wait (bounded) until Prometheus is ready, both targets are up and the
        counter of both pods is stored
  series URL POD...
        the stored series: right labels, no exported_ labels, scraped as
        OpenMetrics, up == 1
  query URL OUT WINDOW POD...
        evaluate the adapter's metricsQuery, filled as prometheus-adapter fills
        it for pods/* in namespace default (WINDOW "" keeps the rule's range,
        else the rate() range is replaced by WINDOW), save the result in OUT
  judge-load RESULT RATE POD=LOAD_SUMMARY...
        each pod's value matches the applied rate (load client summary) within
        10%; the HPA decision must be a scale-up to maxReplicas
  rest URL WINDOW TIMEOUT POD...
        after the load: poll (bounded) the query with the rate() range WINDOW
        until every pod reads 0; the HPA decision must be minReplicas
  scrapes URL SINCE POD...
        no failed scrape of either target since SINCE (unix time)

Environment: E2E_T0 (unix time of the start) and E2E_TIMELINE (file) for the
timeline; every `mark` line goes there as well as to stdout.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hpa_model as hm  # noqa: E402  (the controller's defaults)
import manifests as mf  # noqa: E402  (manifest helpers: scrape job, pod targets, the adapter's template)

NAMESPACE = "default"
TOLERANCE = 0.1  # the HPA controller's default --horizontal-pod-autoscaler-tolerance
MATCH = 0.10  # allowed relative error of the adapter's value against the applied rate

# What Prometheus 2.42 sends when it scrapes (scrape.acceptHeader).
PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


class Failed(Exception):
    pass


def mark(msg: str) -> None:
    now = time.time()
    t0 = float(os.environ.get("E2E_T0", now))
    line = f"[{now - t0:6.1f}s] {msg}"
    print(line, flush=True)
    tl = os.environ.get("E2E_TIMELINE")
    if tl:
        with open(tl, "a") as f:
            f.write(f"{now:.3f}\t{msg}\n")


def say(msg: str) -> None:
    print(f"          {msg}", flush=True)


def get_json(url: str, timeout: float = 2.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.load(r)


def api(base: str, path: str, **params) -> dict:
    url = f"{base}{path}" + ("?" + urllib.parse.urlencode(params, doseq=True) if params else "")
    body = get_json(url)
    if body.get("status") != "success":
        raise Failed(f"{url}: {body}")
    return body["data"]


def instant(base: str, expr: str, at: float | None = None) -> list[dict]:
    params = {"query": expr}
    if at is not None:
        params["time"] = f"{at:.3f}"
    data = api(base, "/api/v1/query", **params)
    if data["resultType"] != "vector":
        raise Failed(f"{expr}: result type {data['resultType']}, want vector")
    return data["result"]


# --------------------------------------------------------------------------
# The manifests


def hpa_spec() -> dict:
    return mf.load_yaml(mf.HPA)["spec"]


def adapter_rule_for_hpa() -> tuple[dict, str, str, float]:
    """(adapter rule, series, served metric name, HPA target averageValue)."""
    name, target = mf.hpa_pods_metric(mf.load_yaml(mf.HPA))
    rule, series = mf.adapter_rule_for(name)
    return rule, series, name, target


def adapter_query(pods: list[str], window: str = "") -> tuple[str, str]:
    """(filled query, the rule's rate window) as prometheus-adapter fills the
    metricsQuery for GET .../namespaces/default/pods/*/<metric>."""
    rule, _, _, _ = adapter_rule_for_hpa()
    filled = mf.fill_adapter(rule, NAMESPACE, pods)
    windows = mf.rate_windows(filled)
    if len(windows) != 1:
        raise Failed(f"adapter metricsQuery must have one rate() range, has {windows}: {rule['metricsQuery']}")
    if window:
        filled = mf.with_rate_window(filled, window)
    return filled, windows[0]


def hpa_decision(current: int, values: dict[str, float]) -> dict:
    """The HPA controller on a Pods metric with an AverageValue target:
    usageRatio = average / target; within the tolerance no change, else
    ceil(usageRatio * readyPods); then clamped to min/max replicas."""
    spec = hpa_spec()
    _, _, name, target = adapter_rule_for_hpa()
    lo, hi = spec.get("minReplicas", 1), spec["maxReplicas"]
    avg = sum(values.values()) / len(values)
    ratio = avg / target
    if abs(ratio - 1) <= TOLERANCE:
        raw, why = current, f"|ratio-1| = {abs(ratio - 1):.3f} <= {TOLERANCE}: no change"
    else:
        raw = math.ceil(ratio * len(values))
        why = f"ceil({len(values)} x {ratio:.3f}) = {raw}"
    desired = min(max(raw, lo), hi)
    return {"metric": name, "target": target, "average": avg, "ratio": ratio, "raw": raw, "why": why,
            "min": lo, "max": hi, "current": current, "desired": desired}


def scale_up_steps(current: int, desired: int) -> list[int]:
    """Replica counts the HPA's behavior.scaleUp allows, one policy period each."""
    up = (hpa_spec().get("behavior") or {}).get("scaleUp") or {}
    policies = up.get("policies") or hm.DEFAULT_SCALE_UP["policies"]
    select = up.get("selectPolicy", "Max")
    steps, n = [], current
    while n < desired and len(steps) < 20:
        limits = [math.ceil(n * (1 + p["value"] / 100)) if p["type"] == "Percent" else n + p["value"]
                  for p in policies]
        if select == "Disabled":
            break
        n = min(desired, max(limits) if select == "Max" else min(limits))
        steps.append(n)
    return steps


def print_decision(d: dict, label: str) -> None:
    say(f"HPA ({label}): metric {d['metric']}, target averageValue {d['target']:g}, "
        f"currentReplicas {d['current']}, average {d['average']:.3f} -> ratio {d['ratio']:.3f}; "
        f"{d['why']}; clamped to {d['min']}..{d['max']} -> desiredReplicas {d['desired']}")


# --------------------------------------------------------------------------
# Subcommands


def cmd_config(out: str, port_a: str, pod_a: str, port_b: str, pod_b: str) -> None:
    job = dict(mf.scrape_job())
    sm = mf.load_yaml(mf.SERVICEMONITOR)
    ep = sm["spec"]["endpoints"][0]
    svc = mf.load_yaml(mf.SERVICE)
    dep = mf.load_yaml(mf.DEPLOYMENT)
    # The two routes must agree on what matters to the series: job label,
    # path, honor_labels (check_consistency.py checks them too).
    agree = {
        "job": (job["job_name"], svc["metadata"]["name"]),
        "path": (job.get("metrics_path", "/metrics"), ep.get("path", "/metrics")),
        "honor_labels": (job.get("honor_labels", False), ep.get("honorLabels", False)),
        "scheme": (job.get("scheme", "http"), ep.get("scheme", "http")),
    }
    bad = {k: v for k, v in agree.items() if v[0] != v[1]}
    if bad:
        raise Failed(f"scrape config and ServiceMonitor disagree: {bad}")
    if job["job_name"] != "app-service" or job.get("honor_labels") is not True:
        raise Failed(f"expected job app-service with honor_labels true, got {job['job_name']} {job.get('honor_labels')}")
    orig = (job.get("scrape_interval"), job.get("scrape_timeout"))
    job["scrape_interval"] = "1s"
    job["scrape_timeout"] = "1s"
    if job.pop("kubernetes_sd_configs", None) is None:
        raise Failed("the scrape job has no kubernetes_sd_configs to replace")
    pod_tmpl = dep["spec"]["template"]
    container = pod_tmpl["spec"]["containers"][0]
    http = mf.container_port(container, "http")
    if http is None:
        raise Failed(f"{mf.DEPLOYMENT}: no container port named http")

    def group(pod: str, address: str, port: dict = http, phase: str = "Running") -> dict:
        """The target group Kubernetes SD (role pod) would give this pod's port."""
        return mf.sd_target_group(mf.pod_target(job, pod_tmpl["metadata"]["labels"], port, container["name"],
                                                ns=NAMESPACE, name=pod, phase=phase, address=address))

    job["static_configs"] = [
        group(pod_a, f"127.0.0.1:{port_a}"),
        group(pod_b, f"127.0.0.1:{port_b}"),
        # Decoys the manifest's relabel_configs must drop: another port of a
        # pod, and a finished pod. Nothing listens on port 9.
        group(pod_a, "127.0.0.1:9", port=dict(http, name="metrics-other", containerPort=9)),
        group("app-e2e-finished", "127.0.0.1:9", phase="Succeeded"),
    ]
    config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
              "scrape_configs": [job]}
    with open(out, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False, width=1000)
    say(f"job {job['job_name']} from {mf.SCRAPE_CONFIGS}: honor_labels {job['honor_labels']}, "
        f"path {job.get('metrics_path', '/metrics')}, {len(job.get('relabel_configs') or [])} relabel_configs as shipped; "
        f"agrees with ServiceMonitor/{sm['metadata']['name']} (job = Service {svc['metadata']['name']}, honorLabels, path)")
    say(f"changed for the run: scrape_interval/timeout {orig[0]}/{orig[1]} -> 1s/1s; kubernetes_sd_configs (role pod) -> "
        f"static targets with the role-pod meta labels (namespace, pod name, pod labels, container port name "
        f"{http['name']!r}, phase) + 2 decoys to be dropped")


def cmd_wait(base: str, timeout: str, *pods: str) -> None:
    deadline = time.time() + float(timeout)
    last = "no answer yet"

    def poll(what: str, fn) -> None:
        nonlocal last
        while True:
            try:
                res = fn()
                if res:
                    return
            except Exception as e:  # connection refused while starting, etc.
                last = f"{type(e).__name__}: {e}"
            if time.time() > deadline:
                raise Failed(f"timed out after {timeout} s waiting for {what}; last: {last}")
            time.sleep(0.2)

    def ready() -> bool:
        with urllib.request.urlopen(f"{base}/-/ready", timeout=1) as r:
            return r.status == 200

    poll("Prometheus /-/ready", ready)
    mark("Prometheus ready (/-/ready 200)")

    def targets_up() -> bool:
        nonlocal last
        data = api(base, "/api/v1/targets", state="any")
        active = [t for t in data["activeTargets"] if t["labels"].get("job") == "app-service"]
        health = {t["labels"].get("pod"): (t["health"], t.get("lastError", "")) for t in active}
        last = f"active {health}, dropped {len(data['droppedTargets'])}"
        if sorted(health) != sorted(pods):
            if len(active) > len(pods):
                raise Failed(f"unexpected active targets: {health}")
            return False
        for pod, (h, err) in health.items():
            if h == "down":
                raise Failed(f"target {pod} is down: {err}")
        if not all(h == "up" for h, _ in health.values()):
            return False
        dropped = [t["discoveredLabels"] for t in data["droppedTargets"]]
        if len(dropped) != 2:
            raise Failed(f"expected the 2 decoy targets dropped by relabeling, got {dropped}")
        for t in active:
            say(f"target {t['scrapeUrl']}: health {t['health']}, labels {t['labels']}, "
                f"scrape every {t.get('scrapeInterval')} (last took {t['lastScrapeDuration'] * 1000:.1f} ms)")
        say("relabeling dropped the 2 decoys: " + "; ".join(
            f"{d['__address__']} port {d['__meta_kubernetes_pod_container_port_name']!r} phase {d['__meta_kubernetes_pod_phase']}"
            for d in dropped))
        return True

    poll("both targets up in /api/v1/targets", targets_up)
    mark(f"both targets up in /api/v1/targets ({', '.join(pods)}); 2 decoys dropped by the manifest's relabeling")

    def data_present() -> bool:
        nonlocal last
        res = instant(base, 'slpocapp_request_operations_total{job="app-service"}')
        last = f"{len(res)} series"
        return sorted(r["metric"].get("pod") for r in res) == sorted(pods)

    poll("slpocapp_request_operations_total stored for both pods", data_present)
    mark("data present: slpocapp_request_operations_total stored for both pods")


def cmd_series(base: str, *pods: str) -> None:
    series = api(base, "/api/v1/series", **{"match[]": 'slpocapp_request_operations_total'})
    problems = []
    if sorted(s.get("pod") for s in series) != sorted(pods):
        problems.append(f"want one series per pod {sorted(pods)}, got {series}")
    for s in series:
        exported = [k for k in s if k.startswith("exported_")]
        if exported:
            problems.append(f"exported_ labels {exported} in {s}")
        if s.get("namespace") != NAMESPACE or s.get("job") != "app-service":
            problems.append(f"namespace/job wrong in {s}")
        say(f"series {s}")
    # Any exported_ label on any series of the job (the histogram, process_*, up)?
    allser = api(base, "/api/v1/series", **{"match[]": '{job="app-service"}'})
    exp = sorted({k for s in allser for k in s if k.startswith("exported_")})
    if exp:
        problems.append(f"exported_ labels on the job's series: {exp}")
    say(f"{len(allser)} series of job app-service, none with an exported_ label: {not exp}")
    # The format Prometheus negotiated: OpenMetrics names a counter family
    # without _total on its TYPE line, the text format with it, and the
    # scrape's metadata keeps that family name.
    meta = api(base, "/api/v1/targets/metadata", match_target='{job="app-service"}')
    families = {(m["metric"], m["type"]) for m in meta}
    if ("slpocapp_request_operations", "counter") not in families:
        problems.append(f"metadata {sorted(families)} has no counter family slpocapp_request_operations: "
                        "the scrape did not go through OpenMetrics")
    else:
        say("the target's metadata names the counter family slpocapp_request_operations: Prometheus "
            "negotiated and parsed OpenMetrics")
    # promlite writes no _created samples unless a registry asks for them, so
    # Prometheus stores no twin series of the counter and the histogram.
    created = api(base, "/api/v1/series", **{"match[]": '{__name__=~".+_created",job="app-service"}'})
    if created:
        problems.append(f"_created series stored: {created}")
    else:
        say("no _created series stored (none is written by default)")
    # And what the binary answers to Prometheus' Accept header.
    t = [t for t in api(base, "/api/v1/targets")["activeTargets"] if t["labels"].get("job") == "app-service"]
    for tg in t:
        req = urllib.request.Request(tg["scrapeUrl"], headers={"Accept": PROMETHEUS_ACCEPT})
        with urllib.request.urlopen(req, timeout=2) as r:
            ctype = r.headers.get("Content-Type", "")
            body = r.read().decode()
        if not ctype.startswith("application/openmetrics-text; version=1.0.0") or not body.rstrip().endswith("# EOF"):
            problems.append(f"{tg['scrapeUrl']} answers Prometheus' Accept header with {ctype!r}")
        else:
            say(f"{tg['scrapeUrl']} with Prometheus 2.42's Accept header -> Content-Type {ctype!r}, ends with # EOF")
    up = instant(base, 'up{job="app-service"}')
    if sorted((r["metric"].get("pod"), r["value"][1]) for r in up) != sorted((p, "1") for p in pods):
        problems.append(f"up is not 1 for both pods: {up}")
    if problems:
        raise Failed("; ".join(problems))


def cmd_query(base: str, out: str, window: str, *pods: str) -> None:
    query, rule_window = adapter_query(list(pods), window)
    at = time.time()
    res = instant(base, query, at)
    values = {r["metric"].get("pod"): float(r["value"][1]) for r in res}
    for r in res:
        if set(r["metric"]) != {"pod"}:
            raise Failed(f"query result should be grouped by pod only: {r['metric']}")
    if sorted(values) != sorted(pods):
        raise Failed(f"query {query} returned pods {sorted(values)}, want {sorted(pods)}")
    Path(out).write_text(json.dumps({"query": query, "rule_window": rule_window, "time": at, "values": values}))
    say(f"query (adapter metricsQuery, filled for pods/* in namespace {NAMESPACE}): {query}")
    say("values: " + ", ".join(f"{p} {v:.3f}/s" for p, v in sorted(values.items())))


def load_summary(path: str) -> tuple[int, float, float]:
    """(requests, seconds, req/s) from the load client's first summary line."""
    text = Path(path).read_text()
    m = re.search(r"^(\d+) requests in ([0-9.]+) s over \d+ connections .*: ([0-9.]+) req/s$", text, re.M)
    if not m:
        raise Failed(f"no summary line in {path}:\n{text}")
    errs = re.search(r"^errors: (\d+);", text, re.M)
    if not errs or errs.group(1) != "0":
        raise Failed(f"the load client reported errors in {path}:\n{text}")
    return int(m.group(1)), float(m.group(2)), float(m.group(3))


def cmd_judge_load(result: str, rate: str, *pairs: str) -> None:
    r = json.loads(Path(result).read_text())
    configured = float(rate)
    problems = []
    say(f"{'pod':<12} {'configured':>10} {'applied':>10} {'adapter':>10} {'error':>8}")
    for pair in pairs:
        pod, path = pair.split("=", 1)
        n, secs, _ = load_summary(path)
        applied = n / secs  # the summary's req/s is rounded to a whole number
        got = r["values"][pod]
        err = (got - applied) / applied
        say(f"{pod:<12} {configured:>8.1f}/s {applied:>8.3f}/s {got:>8.3f}/s {err:>+7.1%}   "
            f"(load client: {n} requests in {secs:.2f} s)")
        if abs(applied - configured) / configured > MATCH:
            problems.append(f"{pod}: the load client applied {applied:.2f} req/s, not the configured {configured:g}")
        if abs(err) > MATCH:
            problems.append(f"{pod}: adapter value {got:.3f} is off the applied rate {applied:.2f} by {err:+.1%} (> {MATCH:.0%})")
    d = hpa_decision(len(r["values"]), r["values"])
    print_decision(d, "under load")
    steps = scale_up_steps(d["current"], d["desired"])
    up = (hpa_spec().get("behavior") or {}).get("scaleUp") or {}
    periods = sorted({p.get("periodSeconds") for p in up.get("policies") or []})
    say(f"behavior.scaleUp (stabilization {up.get('stabilizationWindowSeconds', 0)} s, selectPolicy "
        f"{up.get('selectPolicy', 'Max')}): {' -> '.join(map(str, [d['current']] + steps))} replicas, "
        f"one step per {periods} s period")
    if not (d["desired"] > d["current"] and d["desired"] == d["max"]):
        problems.append(f"under load the HPA must scale up to maxReplicas {d['max']}, got desired {d['desired']}")
    if problems:
        raise Failed("; ".join(problems))
    mark(f"under load: adapter values match the applied rates within {MATCH:.0%}; "
         f"HPA desired {d['desired']} (scale up {d['current']} -> {d['desired']} = max)")


def cmd_rest(base: str, window: str, timeout: str, *pods: str) -> None:
    query, rule_window = adapter_query(list(pods), window)
    full, _ = adapter_query(list(pods))
    deadline = time.time() + float(timeout)
    say(f"at rest: the adapter's window is {rule_window}, so its value needs {rule_window} after the load to reach 0; "
        f"to stay short this run evaluates the SAME query with the rate() range shortened to [{window}] "
        f"(scrape interval 1 s here vs 15 s in the cluster): {query}")
    while True:
        res = instant(base, query)
        values = {r["metric"].get("pod"): float(r["value"][1]) for r in res}
        if sorted(values) == sorted(pods) and all(v == 0 for v in values.values()):
            break
        if time.time() > deadline:
            raise Failed(f"values did not reach 0 within {timeout} s: {values}")
        time.sleep(0.5)
    say("values [" + window + "]: " + ", ".join(f"{p} {v:.3f}/s" for p, v in sorted(values.items())))
    still = {r["metric"].get("pod"): float(r["value"][1]) for r in instant(base, full)}
    say(f"for comparison, the unshortened [{rule_window}] query now reads "
        + ", ".join(f"{p} {v:.3f}/s" for p, v in sorted(still.items()))
        + f" (still draining: it falls to 0 {rule_window} after the load; the HPA's scaleDown "
          f"stabilization window of {(hpa_spec().get('behavior') or {}).get('scaleDown', {}).get('stabilizationWindowSeconds', 300)} s "
          "delays a scale-in further anyway)")
    d = hpa_decision(len(values), values)
    print_decision(d, f"at rest, [{window}] window")
    if d["desired"] != d["min"]:
        raise Failed(f"at rest the HPA must want minReplicas {d['min']}, got {d['desired']}")
    d6 = hpa_decision(d["max"], {f"p{i}": 0.0 for i in range(d["max"])})
    down = (hpa_spec().get("behavior") or {}).get("scaleDown") or {}
    say(f"from {d['max']} replicas at rest the formula also gives {d6['desired']} (= minReplicas); behavior.scaleDown "
        f"applies it after {down.get('stabilizationWindowSeconds', 300)} s stabilization, "
        + ", ".join(f"{p['value']} {p['type']} per {p['periodSeconds']} s" for p in down.get("policies") or []))
    mark(f"at rest ([{window}] window, shortened from [{rule_window}]): every pod reads 0/s; HPA desired {d['desired']} = min")


def cmd_scrapes(base: str, since: str, *pods: str) -> None:
    secs = max(2, int(time.time() - float(since)))
    res = instant(base, f'min_over_time(up{{job="app-service"}}[{secs}s])')
    cnt = instant(base, f'count_over_time(up{{job="app-service"}}[{secs}s])')
    mins = {r["metric"].get("pod"): float(r["value"][1]) for r in res}
    counts = {r["metric"].get("pod"): int(float(r["value"][1])) for r in cnt}
    say(f"scrapes in the last {secs} s: " + ", ".join(f"{p} {counts.get(p)} (min up {mins.get(p)})" for p in sorted(pods)))
    if sorted(mins) != sorted(pods) or any(v != 1 for v in mins.values()):
        raise Failed(f"a scrape failed (up was 0: strict OpenMetrics parse error or timeout): {mins}")
    mark(f"every scrape of both targets succeeded ({min(counts.values())}+ each, OpenMetrics parsed strictly)")


def main(argv: list[str]) -> int:
    cmds = {"config": cmd_config, "wait": cmd_wait, "series": cmd_series, "query": cmd_query,
            "judge-load": cmd_judge_load, "rest": cmd_rest, "scrapes": cmd_scrapes}
    if len(argv) < 2 or argv[1] not in cmds:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        cmds[argv[1]](*argv[2:])
    except (Failed, mf.ManifestError) as e:
        print(f"FAIL {argv[1]}: {e}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
