"""What manifests/ says, read the way the cluster's components read it.

Shared by scripts/check_consistency.py (the offline checks), scripts/e2e_hpa.py
(one scaling step against a real Prometheus) and scripts/hpa_sim.py (the whole
scaling loop). Paths are relative to the repository root, the working
directory of every caller. Needs PyYAML.

- Loading: `load_yaml`, `load_docs`, the manifest paths.
- Units: `parse_duration` (Prometheus), `parse_quantity` (Kubernetes).
- Kubernetes: `selector_matches`, `container_port`, `env_of`.
- Prometheus: `pod_target` (the labels Kubernetes SD role pod gives a
  container port), `sd_target_group` (the same as a static or file_sd target
  group), `relabel` (Prometheus' relabeling), `scrape_job`.
- prometheus-adapter: `adapter_rules`, `series_metric`, `adapter_output_name`,
  `adapter_rule_for`, `fill_adapter` (the metricsQuery template filled as the
  adapter fills it), `rate_windows` / `with_rate_window`.
- The HPA: `hpa_pods_metric` (the one Pods metric and its target).

Errors in the manifests raise `ManifestError`.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

MANIFESTS = Path("manifests")
DEPLOYMENT = MANIFESTS / "deployment.yaml"
SERVICE = MANIFESTS / "service.yaml"
SERVICEMONITOR = MANIFESTS / "servicemonitor.yaml"
HPA = MANIFESTS / "hpa.yaml"
KUSTOMIZATION = MANIFESTS / "kustomization.yaml"
SCRAPE_CONFIGS = MANIFESTS / "prometheus" / "additional-scrape-configs.yaml"
RULES_TEST = MANIFESTS / "prometheus" / "rules-test.yaml"
ADAPTER_VALUES = MANIFESTS / "adapter" / "values.yaml"
DOCKERFILE = Path("Dockerfile.scratch")

# The fields of the adapter's metricsQuery template this project uses.
ADAPTER_TEMPLATE_FIELDS = ("<<.Series>>", "<<.LabelMatchers>>", "<<.GroupBy>>")


class ManifestError(Exception):
    """The manifests say something these helpers cannot read or simulate."""


# --------------------------------------------------------------------------
# Loading


def load_docs(path: Path | str) -> list[dict]:
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def load_yaml(path: Path | str):
    with open(path) as f:
        return yaml.safe_load(f)


# --------------------------------------------------------------------------
# Units


def parse_duration(d: str) -> float:
    """A Prometheus duration ("1m", "15s", "1h30m") in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", d)
    if not parts or "".join(n + u for n, u in parts) != d:
        raise ManifestError(f"not a Prometheus duration: {d!r}")
    return sum(int(n) * units[u] for n, u in parts)


def format_duration(seconds: float) -> str:
    """Seconds as a Prometheus duration, in whole milliseconds ("1m", "7500ms")."""
    ms = max(1, round(seconds * 1000))
    if ms % 60000 == 0:
        return f"{ms // 60000}m"
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    return f"{ms}ms"


def parse_quantity(q: str) -> float:
    """A Kubernetes quantity as the HPA reads averageValue ("2", "500m", "1.5k")."""
    m = re.fullmatch(r"([0-9.]+)(m|k|M|G)?", q)
    if not m:
        raise ManifestError(f"unsupported quantity {q!r}")
    return float(m.group(1)) * {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9}[m.group(2)]


# --------------------------------------------------------------------------
# Kubernetes


def selector_matches(selector: dict | None, labels: dict) -> bool:
    """A LabelSelector (matchLabels/matchExpressions) or a plain map (Service)."""
    if not selector:
        return False  # an empty selector would select everything: never what we mean here
    if "matchLabels" in selector or "matchExpressions" in selector:
        for k, v in (selector.get("matchLabels") or {}).items():
            if labels.get(k) != v:
                return False
        for e in selector.get("matchExpressions") or []:
            key, op, vals = e["key"], e["operator"], e.get("values") or []
            if op == "In" and labels.get(key) not in vals:
                return False
            if op == "NotIn" and labels.get(key) in vals:
                return False
            if op == "Exists" and key not in labels:
                return False
            if op == "DoesNotExist" and key in labels:
                return False
        return True
    return all(labels.get(k) == v for k, v in selector.items())


def container_port(container: dict, port) -> dict | None:
    """The container port a Service/probe/policy port refers to, by name or number."""
    for p in container.get("ports") or []:
        if (isinstance(port, str) and p.get("name") == port) or (isinstance(port, int) and p.get("containerPort") == port):
            return p
    return None


def env_of(container: dict) -> dict:
    return {e["name"]: e for e in container.get("env") or []}


# --------------------------------------------------------------------------
# Prometheus: service discovery and relabeling


def meta_label_suffix(name: str) -> str:
    """A Kubernetes label name as Kubernetes SD spells it in a meta label name."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def pod_target(job: dict, pod_labels: dict, port: dict, container: str, ns: str = "default",
               name: str = "app-5d9c7b-x2x4q", phase: str = "Running", address: str | None = None,
               ready: bool = True) -> dict:
    """The labels Kubernetes SD role pod gives one container port of a pod
    (address: the target's host:port, by default a pod IP and the containerPort)."""
    t = {
        "job": job["job_name"],
        "__address__": address or f"10.0.0.7:{port['containerPort']}",
        "__scheme__": job.get("scheme", "http"),
        "__metrics_path__": job.get("metrics_path", "/metrics"),
        "__meta_kubernetes_namespace": ns,
        "__meta_kubernetes_pod_name": name,
        "__meta_kubernetes_pod_phase": phase,
        "__meta_kubernetes_pod_ready": "true" if ready else "false",
        "__meta_kubernetes_pod_container_name": container,
        "__meta_kubernetes_pod_container_port_name": port.get("name", ""),
        "__meta_kubernetes_pod_container_port_number": str(port["containerPort"]),
        "__meta_kubernetes_pod_container_port_protocol": port.get("protocol", "TCP"),
    }
    for k, v in pod_labels.items():
        k = meta_label_suffix(k)
        t[f"__meta_kubernetes_pod_label_{k}"] = v
        t[f"__meta_kubernetes_pod_labelpresent_{k}"] = "true"
    return t


def sd_target_group(target: dict) -> dict:
    """A `pod_target` as one target group of static_configs / file_sd_configs:
    the address and the meta labels, as service discovery hands them to
    relabeling (job, scheme and path come from the scrape job itself)."""
    return {"targets": [target["__address__"]],
            "labels": {k: v for k, v in target.items() if k.startswith("__meta_")}}


def go_replacement(r: str) -> str:
    """A Go regexp replacement ($1, ${1}, $name) as a Python one (\\g<1>)."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda g: "\\g<" + (g.group(1) or g.group(2)) + ">", r)


def relabel(labels: dict, configs: list[dict]) -> dict | None:
    """Prometheus relabeling (replace, keep, drop, labelmap, labeldrop,
    labelkeep); None when the target is dropped."""
    labels = dict(labels)
    for c in configs:
        action = c.get("action", "replace")
        rx = re.compile("^(?:" + c.get("regex", "(.*)") + ")$")
        value = c.get("separator", ";").join(labels.get(l, "") for l in c.get("source_labels") or [])
        if action == "keep":
            if not rx.match(value):
                return None
        elif action == "drop":
            if rx.match(value):
                return None
        elif action == "replace":
            m = rx.match(value)
            if m:
                target = m.expand(go_replacement(c["target_label"]))
                result = m.expand(go_replacement(c.get("replacement", "$1")))
                if result:
                    labels[target] = result
                else:
                    labels.pop(target, None)
        elif action == "labelmap":
            for k, v in list(labels.items()):
                m = rx.match(k)
                if m:
                    labels[m.expand(go_replacement(c.get("replacement", "$1")))] = v
        elif action in ("labeldrop", "labelkeep"):
            labels = {k: v for k, v in labels.items() if bool(rx.match(k)) == (action == "labelkeep")}
        else:
            raise ManifestError(f"relabel action {action!r} not simulated")
    labels.setdefault("instance", labels.get("__address__", ""))
    return {k: v for k, v in labels.items() if not k.startswith("__")}


def scrape_job() -> dict:
    """The one job of manifests/prometheus/additional-scrape-configs.yaml."""
    jobs = load_yaml(SCRAPE_CONFIGS)
    if not isinstance(jobs, list) or len(jobs) != 1:
        raise ManifestError(f"{SCRAPE_CONFIGS}: expected a list of one scrape job")
    return jobs[0]


# --------------------------------------------------------------------------
# prometheus-adapter


def adapter_rules() -> list[dict]:
    values = load_yaml(ADAPTER_VALUES)
    return values["rules"]["custom"]


def series_metric(series_query: str) -> str:
    """The metric name a rule's seriesQuery selects."""
    m = re.match(r"\s*([a-zA-Z_:][\w:]*)", series_query)
    if not m:
        raise ManifestError(f"cannot read a metric name from seriesQuery {series_query!r}")
    return m.group(1)


def adapter_output_name(rule: dict, series: str) -> str:
    """The metric name prometheus-adapter serves for `series` (Go regexp
    ReplaceAllString semantics for `as`: $1 / ${1}; empty `as` means $1 with
    one capture group, else the whole name)."""
    name = rule.get("name") or {}
    matches = name.get("matches", "")
    as_ = name.get("as", "")
    rx = re.compile(matches)
    m = rx.search(series)
    if not m:
        raise ManifestError(f"adapter name.matches {matches!r} does not match {series!r}")
    if not as_:
        as_ = "$1" if rx.groups == 1 else "$0"
    return rx.sub(go_replacement(as_), series, count=1)


def adapter_rule_for(metric: str) -> tuple[dict, str]:
    """(rule, series) of the adapter rule that serves `metric`."""
    for r in adapter_rules():
        series = series_metric(r["seriesQuery"])
        if adapter_output_name(r, series) == metric:
            return r, series
    raise ManifestError(f"no adapter rule in {ADAPTER_VALUES} serves {metric}")


def resource_label(rule: dict, resource: str) -> str:
    """The series label that a rule's resources.overrides maps to `resource`."""
    for label, target in ((rule.get("resources") or {}).get("overrides") or {}).items():
        if (target or {}).get("resource") == resource:
            return label
    raise ManifestError(f"adapter rule maps no label to resource {resource!r}: {rule.get('resources')}")


def fill_adapter(rule: dict, namespace: str, pods: list[str]) -> str:
    """The rule's metricsQuery as prometheus-adapter fills it for
    GET /apis/custom.metrics.k8s.io/v1beta1/namespaces/NS/pods/*/METRIC, the
    HPA's request for a Pods metric (the adapter asks with the names of the
    pods the HPA's selector lists): <<.Series>> is the series name,
    <<.LabelMatchers>> the namespace equality and the pod name (`=` for one
    pod, `=~"a|b"` for several), <<.GroupBy>> the pod label."""
    if not pods:
        raise ManifestError("the adapter is asked for at least one pod")
    series = series_metric(rule["seriesQuery"])
    ns_label, pod_label = resource_label(rule, "namespace"), resource_label(rule, "pod")
    pod_matcher = f'{pod_label}="{pods[0]}"' if len(pods) == 1 else f'{pod_label}=~"{"|".join(pods)}"'
    fields = {
        "<<.Series>>": series,
        "<<.LabelMatchers>>": f'{ns_label}="{namespace}",{pod_matcher}',
        "<<.GroupBy>>": pod_label,
    }
    query = rule["metricsQuery"]
    for k, v in fields.items():
        query = query.replace(k, v)
    if "<<" in query:
        raise ManifestError(f"unfilled adapter template in {query!r}")
    return query


_RATE_RANGE = re.compile(r"(rate\([^\[]*\[)(\w+)(\])")


def rate_windows(query: str) -> list[str]:
    """The range of every rate() in a query ("1m")."""
    return [m.group(2) for m in _RATE_RANGE.finditer(query)]


def with_rate_window(query: str, window: str) -> str:
    """The same query with every rate() range replaced by `window`."""
    return _RATE_RANGE.sub(rf"\g<1>{window}\g<3>", query)


# --------------------------------------------------------------------------
# The HPA


def hpa_pods_metric(hpa: dict) -> tuple[str, float]:
    """(metric name, target averageValue) of the HPA's one Pods metric."""
    metrics = [m for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    if len(metrics) != 1:
        raise ManifestError(f"{HPA}: expected one Pods metric, found {len(metrics)}")
    target = metrics[0]["pods"]["target"]
    if target.get("type") != "AverageValue":
        raise ManifestError(f"{HPA}: target type {target.get('type')}, want AverageValue")
    return metrics[0]["pods"]["metric"]["name"], parse_quantity(str(target["averageValue"]))

