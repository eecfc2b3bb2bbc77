#!/usr/bin/env python3
"""Cross-file checks of manifests/, called by scripts/check-manifests.sh.

Subcommands (paths are relative to the repository root, the working directory):

  prepare BUILT OUTDIR      write, from the kustomize output BUILT and the files
                            under manifests/, the plain files promtool checks:
                              OUTDIR/slpocapp-rules.yaml  the PrometheusRule's spec
                              OUTDIR/rules-test.yaml      copy of the unit tests
                              OUTDIR/prometheus.yml       full config around the
                                                          additional scrape configs
                              OUTDIR/promql-exprs.yaml    every shipped PromQL
                                                          expression as a recording rule
  kubernetes-validate LOG V judge kubernetes-validate's output: only the
                            Prometheus Operator kinds may lack a schema
  skips BUILT               list checkov skip annotations; each needs a reason
  strip-skips BUILT OUT     BUILT without the skip annotations
  stale-skips BUILT JSON    checkov's JSON report on the stripped file fails
                            exactly the checks the annotations skip
  consistency BUILT         names, labels, ports and metrics agree across files
  metrics-sample BUILT      with METRICS_SAMPLE set (a saved /metrics scrape of
                            the running binary): every metric the manifests
                            query is exported

Each check prints one line, `ok   ...` or `FAIL ...`; the exit status is 1 if
any failed. The manifest helpers (relabeling, pod targets, the adapter's
template) are scripts/manifests.py. Needs PyYAML.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from manifests import (  # noqa: E402
    ADAPTER_TEMPLATE_FIELDS, ADAPTER_VALUES, DOCKERFILE, KUSTOMIZATION, RULES_TEST, SCRAPE_CONFIGS,
    ManifestError, adapter_output_name, adapter_rules, container_port, env_of, fill_adapter, load_docs,
    load_yaml, meta_label_suffix, parse_duration, pod_target, rate_windows, relabel, selector_matches,
    series_metric,
)


# Metrics the binary exports (its contract), as PromQL sees them: sample
# names, so a histogram is its _bucket/_sum/_count and a counter its _total.
# metrics-sample replaces this list with a real scrape.
APP_METRICS = {
    "slpocapp_request_operations_total",
    "slpocapp_request_duration_seconds_bucket",
    "slpocapp_request_duration_seconds_sum",
    "slpocapp_request_duration_seconds_count",
    # The same histogram's native buckets (slpocapp --native-histogram, over
    # protobuf), which PromQL selects by the family name.
    "slpocapp_request_duration_seconds",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_start_time_seconds",
    "process_open_fds",
    "process_max_fds",
}

# Metrics that come from kube-state-metrics (part of kube-prometheus-stack),
# not from the app. Keep this list short and explicit: anything else a
# dashboard or alert names must be exported by the binary.
KUBE_STATE_METRICS = {
    "kube_deployment_status_replicas",
    "kube_horizontalpodautoscaler_status_current_replicas",
    "kube_horizontalpodautoscaler_status_desired_replicas",
    "kube_horizontalpodautoscaler_spec_max_replicas",
}

# Synthesized by Prometheus itself for every target.
PROMETHEUS_METRICS = {"up"}

# Kinds kubernetes-validate has no schema for, and that we accept unchecked
# by it (their fields are checked in `consistency` instead).
CRD_KINDS = {("ServiceMonitor", "monitoring.coreos.com/v1"), ("PrometheusRule", "monitoring.coreos.com/v1")}

# The pods the adapter's query is filled for when the checks parse it: two
# pods in namespace default, as the HPA's request for pods/* would name them.
ADAPTER_NAMESPACE = "default"
ADAPTER_PODS = ["app-a", "app-b"]

# Grafana template variables, replaced by a plausible value before parsing.
GRAFANA_VARIABLES = {"namespace": "default", "__rate_interval": "1m", "__interval": "15s"}

SKIP_ANNOTATION = "checkov.io/skip"

failures = 0


def ok(msg: str) -> None:
    print(f"ok   {msg}")


def fail(msg: str) -> None:
    global failures
    failures += 1
    print(f"FAIL {msg}")


def check(cond: bool, msg: str, detail: str = "") -> bool:
    if cond:
        ok(msg)
    else:
        fail(f"{msg}{': ' + detail if detail else ''}")
    return cond


# --------------------------------------------------------------------------
# The kustomize output


class Objects:
    """The kustomize output, indexed by kind."""

    def __init__(self, built: str):
        self.docs = load_docs(built)

    def all(self, kind: str) -> list[dict]:
        return [d for d in self.docs if d.get("kind") == kind]

    def one(self, kind: str) -> dict:
        found = self.all(kind)
        if len(found) != 1:
            raise SystemExit(f"FAIL expected exactly one {kind} in the kustomize output, found {len(found)}")
        return found[0]


def dashboards(objs: Objects) -> list[tuple[str, dict]]:
    """(ConfigMap/key, dashboard) for every dashboard ConfigMap."""
    out = []
    for cm in objs.all("ConfigMap"):
        if cm.get("metadata", {}).get("labels", {}).get("grafana_dashboard") is None:
            continue
        for key, text in (cm.get("data") or {}).items():
            out.append((f"{cm['metadata']['name']}/{key}", json.loads(text)))
    return out


# --------------------------------------------------------------------------
# PromQL helpers (no PromQL parser in Python: promtool parses the expressions,
# these only pick names out of them)

_PROMQL_CLAUSES = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "inf", "nan", "start", "end",
}
_IDENT = re.compile(r"(?<![\w:.$])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()")


def promql_metric_names(expr: str) -> set[str]:
    """Metric names selected by a PromQL expression."""
    names = set(re.findall(r"""__name__\s*=\s*"([^"]+)\"""", expr))
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # strings
    s = re.sub(r"\{[^}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)  # ranges and subqueries
    s = _PROMQL_CLAUSES.sub(" ", s)  # label lists of by/on/...
    for m in _IDENT.finditer(s):
        if m.group(1).lower() not in _PROMQL_KEYWORDS:
            names.add(m.group(1))
    return names


def _selftest_promql_metric_names() -> None:
    cases = {
        'sum(rate(a_total{x="y"}[1m])) by (pod)': {"a_total"},
        "histogram_quantile(0.99, sum by (le) (rate(b_bucket[5m]))) > 1": {"b_bucket"},
        "a >= on (namespace, hpa) group_left(x) b offset 5m": {"a", "b"},
        'absent(up{job="app-service"})': {"up"},
        "rate(c[1m:15s]) * 1e3 + d": {"c", "d"},
        '{__name__="e", job="j"}': {"e"},
    }
    for expr, want in cases.items():
        got = promql_metric_names(expr)
        if got != want:
            raise SystemExit(f"FAIL promql_metric_names self-test: {expr!r} gave {sorted(got)}, want {sorted(want)}")


def label_matchers(expr: str, label: str) -> set[str]:
    """Values of every `label="value"` equality matcher in an expression."""
    return set(re.findall(r'(?<![\w])' + re.escape(label) + r'\s*=\s*"([^"]*)"', expr))


def fill_grafana(expr: str) -> str:
    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name not in GRAFANA_VARIABLES:
            raise SystemExit(f"FAIL unknown Grafana variable ${name} in {expr!r}")
        return GRAFANA_VARIABLES[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", sub, expr)


def dashboard_exprs(objs: Objects) -> list[tuple[str, str]]:
    """(where, expression with Grafana variables filled) of every dashboard
    query and query variable."""
    out = []
    for where, dash in dashboards(objs):
        for var in dash.get("templating", {}).get("list", []):
            if var.get("type") != "query":
                continue
            q = var.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\)\s*", q or "")
            if not m:
                raise SystemExit(f"FAIL {where}: variable {var.get('name')} is not label_values(selector, label): {q!r}")
            out.append((f"{where} variable {var['name']}", fill_grafana(m.group(1))))
        for panel in dash.get("panels", []):
            for t in panel.get("targets", []):
                out.append((f"{where} panel {panel.get('id')} {t.get('refId')}", fill_grafana(t["expr"])))
    return out


def alert_exprs(objs: Objects) -> list[tuple[str, str]]:
    out = []
    for pr in objs.all("PrometheusRule"):
        for g in pr["spec"]["groups"]:
            for r in g["rules"]:
                out.append((f"rule {r.get('alert') or r.get('record')}", r["expr"]))
    return out


def adapter_exprs() -> list[tuple[str, str]]:
    return [(f"adapter rule {i} metricsQuery", fill_adapter(r, ADAPTER_NAMESPACE, ADAPTER_PODS))
            for i, r in enumerate(adapter_rules())]


# --------------------------------------------------------------------------
# Prometheus scrape config helpers (promtool may lack Kubernetes SD)

# Fields of kubernetes_sd_configs (Prometheus 2.x docs), HTTP client included.
K8S_SD_FIELDS = {
    "api_server", "role", "kubeconfig_file", "namespaces", "selectors", "attach_metadata",
    "basic_auth", "authorization", "oauth2", "bearer_token", "bearer_token_file", "proxy_url",
    "no_proxy", "proxy_from_environment", "proxy_connect_header", "tls_config",
    "follow_redirects", "enable_http2",
}
K8S_SD_ROLES = {"node", "service", "pod", "endpoints", "endpointslice", "ingress"}
# Meta labels of role pod (besides the per-label/annotation families below).
K8S_SD_POD_META = {
    "__meta_kubernetes_namespace", "__meta_kubernetes_pod_name", "__meta_kubernetes_pod_ip",
    "__meta_kubernetes_pod_container_init", "__meta_kubernetes_pod_container_name",
    "__meta_kubernetes_pod_container_image", "__meta_kubernetes_pod_container_id",
    "__meta_kubernetes_pod_container_port_name", "__meta_kubernetes_pod_container_port_number",
    "__meta_kubernetes_pod_container_port_protocol", "__meta_kubernetes_pod_ready",
    "__meta_kubernetes_pod_phase", "__meta_kubernetes_pod_node_name", "__meta_kubernetes_pod_host_ip",
    "__meta_kubernetes_pod_uid", "__meta_kubernetes_pod_controller_kind",
    "__meta_kubernetes_pod_controller_name", "__address__",
}
K8S_SD_POD_META_PREFIXES = (
    "__meta_kubernetes_pod_label_", "__meta_kubernetes_pod_labelpresent_",
    "__meta_kubernetes_pod_annotation_", "__meta_kubernetes_pod_annotationpresent_",
)


def check_kubernetes_sd(job: dict) -> None:
    jn = job["job_name"]
    sds = job.get("kubernetes_sd_configs") or []
    if not check(len(sds) >= 1, f"scrape job {jn} uses kubernetes_sd_configs"):
        return
    for sd in sds:
        unknown = set(sd) - K8S_SD_FIELDS
        check(not unknown and sd.get("role") in K8S_SD_ROLES,
              f"scrape job {jn} kubernetes_sd_configs: role {sd.get('role')!r}, known fields only",
              f"unknown fields {sorted(unknown)}" if unknown else f"role {sd.get('role')!r}")
        ns = sd.get("namespaces") or {}
        check(set(ns) <= {"own_namespace", "names"} and isinstance(ns.get("names", []), list),
              f"scrape job {jn} kubernetes_sd_configs namespaces well-formed")
    if all(sd.get("role") == "pod" for sd in sds):
        used = {l for r in job.get("relabel_configs") or [] for l in r.get("source_labels") or []}
        bad = {l for l in used if l.startswith("__meta_") and l not in K8S_SD_POD_META
               and not l.startswith(K8S_SD_POD_META_PREFIXES)}
        check(not bad, f"scrape job {jn} relabels only meta labels that role pod provides", f"unknown {sorted(bad)}")



# Subcommands


def cmd_prepare(built: str, outdir: str) -> None:
    objs = Objects(built)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)

    # PrometheusRule -> plain rules file, under the name rules-test.yaml uses.
    pr = objs.one("PrometheusRule")
    rules_name = load_yaml(RULES_TEST)["rule_files"]
    check(rules_name == ["slpocapp-rules.yaml"], "rules-test.yaml reads slpocapp-rules.yaml", str(rules_name))
    with open(out / "slpocapp-rules.yaml", "w") as f:
        yaml.safe_dump({"groups": pr["spec"]["groups"]}, f, sort_keys=False, width=1000)
    shutil.copy(RULES_TEST, out / "rules-test.yaml")
    ok(f"extracted PrometheusRule/{pr['metadata']['name']} spec into a plain rules file")

    # The additional scrape configs (a list) inside a full prometheus.yml.
    scrape = load_yaml(SCRAPE_CONFIGS)
    if check(isinstance(scrape, list) and all(isinstance(j, dict) for j in scrape),
             "additional-scrape-configs.yaml is a list of scrape configs (additionalScrapeConfigs format)"):
        config = {
            "global": {"scrape_interval": "15s", "scrape_timeout": "10s", "evaluation_interval": "15s"},
            "rule_files": ["slpocapp-rules.yaml"],
            "scrape_configs": scrape,
        }
        with open(out / "prometheus.yml", "w") as f:
            yaml.safe_dump(config, f, sort_keys=False, width=1000)
        # For a promtool built without Kubernetes service discovery (Debian's
        # drops it): the same config with each kubernetes_sd_configs replaced
        # by a static target, so that promtool still checks everything else.
        # check_kubernetes_sd() covers the replaced block.
        static = []
        for job in scrape:
            job = dict(job)
            if job.pop("kubernetes_sd_configs", None) is not None:
                job["static_configs"] = [{"targets": ["10.0.0.1:8000"]}]
            static.append(job)
        with open(out / "prometheus-static-sd.yml", "w") as f:
            yaml.safe_dump(dict(config, scrape_configs=static), f, sort_keys=False, width=1000)

    # Every shipped PromQL expression as a recording rule, for promtool to parse.
    exprs = adapter_exprs() + dashboard_exprs(objs) + alert_exprs(objs)
    rules, seen = [], set()
    for i, (where, expr) in enumerate(exprs):
        if expr in seen:
            continue
        seen.add(expr)
        rules.append({"record": f"check:expr_{i}", "expr": expr, "labels": {"source": where}})
    with open(out / "promql-exprs.yaml", "w") as f:
        yaml.safe_dump({"groups": [{"name": "shipped-promql", "rules": rules}]}, f, sort_keys=False, width=1000)
    ok(f"collected {len(rules)} distinct PromQL expressions (adapter query filled for pods in a namespace, "
       f"{sum(1 for w, _ in exprs if 'dashboard' in w or '.json' in w)} dashboard queries, alert rules)")


def cmd_kubernetes_validate(log: str, version: str) -> None:
    text = Path(log).read_text()
    missing = re.compile(r"^WARN .*Couldn't find schema for kind (\S+) with api version (\S+) for kubernetes version (\S+)$")
    passed, bad = 0, []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("INFO ") and " passed for resource " in line:
            passed += 1
            continue
        m = missing.match(line)
        if m and (m.group(1), m.group(2)) in CRD_KINDS:
            continue
        bad.append(line)  # ERROR, FATAL, any other WARN (unknown kind, removed API version)
    if bad:
        fail(f"kubernetes-validate --strict -k {version}: " + " | ".join(bad))
    else:
        check(passed > 0, f"kubernetes-validate --strict -k {version}: {passed} objects valid in strict mode "
              f"(no schema expected only for {', '.join(sorted(k for k, _ in CRD_KINDS))})")


def cmd_skips(built: str) -> None:
    objs = Objects(built)
    n = 0
    for d in objs.docs:
        meta = d.get("metadata") or {}
        for key, val in (meta.get("annotations") or {}).items():
            if SKIP_ANNOTATION not in key:
                continue
            n += 1
            what = f"{d['kind']}/{meta['name']} {key}"
            # checkov splits the value on "=": exactly one, a check id before it
            # and a written reason after it.
            m = re.fullmatch(r"(CKV2?_K8S_\d+)=([^=]+)", str(val))
            if not m or len(m.group(2).split()) < 4:
                fail(f"checkov skip {what} needs the form CKV_K8S_NN=<reason of a few words>, got {val!r}")
            else:
                ok(f"checkov skip {m.group(1)} on {d['kind']}/{meta['name']}: {m.group(2)}")
    # Skip annotations on pod templates do nothing for checkov: keep them on objects.
    for dep in objs.all("Deployment"):
        anns = dep["spec"]["template"].get("metadata", {}).get("annotations") or {}
        check(not any(SKIP_ANNOTATION in k for k in anns),
              f"Deployment/{dep['metadata']['name']} pod template carries no checkov skip annotations")
    if n == 0:
        ok("no checkov skips")


def skip_annotations(objs: Objects) -> set[tuple[str, str, str]]:
    """(check id, kind, name) of every checkov skip annotation."""
    out = set()
    for d in objs.docs:
        for key, val in ((d.get("metadata") or {}).get("annotations") or {}).items():
            if SKIP_ANNOTATION in key:
                out.add((str(val).split("=")[0], d["kind"], d["metadata"]["name"]))
    return out


def cmd_strip_skips(built: str, out: str) -> None:
    """BUILT without its checkov skip annotations, to see what they hide."""
    objs = Objects(built)
    for d in objs.docs:
        anns = (d.get("metadata") or {}).get("annotations") or {}
        for key in [k for k in anns if SKIP_ANNOTATION in k]:
            del anns[key]
        if "annotations" in d.get("metadata", {}) and not anns:
            del d["metadata"]["annotations"]
    with open(out, "w") as f:
        yaml.safe_dump_all(objs.docs, f, sort_keys=False)


def cmd_stale_skips(built: str, checkov_json: str) -> None:
    """Every skip annotation hides a check that fails without it, and every
    check that fails without the annotations is skipped by one."""
    data = json.loads(Path(checkov_json).read_text())
    data = data[0] if isinstance(data, list) else data
    failing = set()
    for c in (data.get("results") or {}).get("failed_checks") or []:
        kind, _ns, name = c["resource"].split(".", 2)
        failing.add((c["check_id"], kind, name))
    skips = skip_annotations(Objects(built))
    check(skips <= failing, f"every checkov skip annotation ({len(skips)}) hides a check that fails without it",
          f"stale: {sorted(skips - failing)}")
    check(failing <= skips, "without the annotations checkov fails exactly the skipped checks",
          f"unskipped: {sorted(failing - skips)}")


class Cluster:
    """The objects of the kustomize output that the consistency checks compare."""

    def __init__(self, built: str):
        self.objs = objs = Objects(built)
        self.dep = objs.one("Deployment")
        self.svc = objs.one("Service")
        self.hpa = objs.one("HorizontalPodAutoscaler")
        self.sm = objs.one("ServiceMonitor")
        self.netpol = objs.one("NetworkPolicy")
        self.pdb = objs.one("PodDisruptionBudget")
        self.pr = objs.one("PrometheusRule")
        self.sa = objs.one("ServiceAccount")
        self.dname, self.sname = self.dep["metadata"]["name"], self.svc["metadata"]["name"]
        pod = self.dep["spec"]["template"]
        self.pod_labels = pod["metadata"]["labels"]
        self.podspec = pod["spec"]
        self.containers = self.podspec["containers"]
        self.c = self.containers[0]
        self.http = container_port(self.c, "http")


def cmd_consistency(built: str) -> None:
    _selftest_promql_metric_names()
    k = Cluster(built)
    check(len(k.containers) == 1, f"Deployment/{k.dname} has one container")
    for checks in (check_workload, check_probes, check_env, check_image, check_hardening, check_hpa,
                   check_servicemonitor, check_scrape_configs, check_netpol_pdb, check_query_names,
                   check_dashboards, check_prometheusrule):
        checks(k)


def check_workload(k: Cluster) -> None:
    """Deployment, Service and their ports."""
    check(selector_matches(k.dep["spec"]["selector"], k.pod_labels),
          f"Deployment/{k.dname} selector matches its pod template labels")
    check(selector_matches(k.svc["spec"].get("selector"), k.pod_labels),
          f"Service/{k.sname} selector {k.svc['spec'].get('selector')} matches the pod template labels")
    for sp in k.svc["spec"]["ports"]:
        cp = container_port(k.c, sp.get("targetPort", sp["port"]))
        check(cp is not None and cp.get("protocol", "TCP") == sp.get("protocol", "TCP"),
              f"Service/{k.sname} port {sp.get('name')} ({sp['port']}) targets container port {sp.get('targetPort')!r}"
              + (f" = {cp['containerPort']}/{cp.get('protocol', 'TCP')}" if cp else ""))
    check(all(sp.get("name") for sp in k.svc["spec"]["ports"]), f"Service/{k.sname} ports are named")


def check_probes(k: Cluster) -> None:
    c = k.c
    probes = {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in probes.items():
        p = c.get(probe)
        if not check(p is not None and "httpGet" in p, f"container {c['name']} has an httpGet {probe}"):
            continue
        g = p["httpGet"]
        check(g.get("path") == path, f"{probe} uses {path}, not the counted /", f"path is {g.get('path')!r}")
        check(container_port(c, g.get("port")) is not None, f"{probe} port {g.get('port')!r} is a container port")
    for probe in ("startupProbe",):
        if c.get(probe):
            check(c[probe].get("httpGet", {}).get("path") not in ("/", "", None), f"{probe} does not use /")


def check_env(k: Cluster) -> None:
    env = env_of(k.c)
    for var, field in (("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")):
        got = env.get(var, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        check(got == field, f"env {var} comes from the downward API {field}", f"got {got!r}")
    if check(k.http is not None, "container port named http exists"):
        port_env = env.get("PORT", {}).get("value")
        check(port_env is None or int(port_env) == k.http["containerPort"],
              f"env PORT ({port_env}) equals containerPort http ({k.http['containerPort']})")


def check_image(k: Cluster) -> None:
    """The image kustomize sets, and the Dockerfile's user and port."""
    c, http = k.c, k.http
    kust = load_yaml(KUSTOMIZATION)
    imgs = {i["name"]: i for i in kust.get("images") or []}
    if check("slpocapp" in imgs, "kustomization.yaml overrides image slpocapp via images:"):
        i = imgs["slpocapp"]
        want = i.get("newName", "slpocapp") + (f"@{i['digest']}" if i.get("digest") else f":{i.get('newTag', 'latest')}")
        check(c["image"] == want, f"built image is {want}", f"got {c['image']!r}")
        check(not c["image"].endswith(":latest"), "image tag is fixed, not latest")
    dockerfile = DOCKERFILE.read_text()
    user = re.findall(r"^USER\s+(\d+):(\d+)\s*$", dockerfile, re.M)
    expose = [int(p) for p in re.findall(r"^EXPOSE\s+(\d+)", dockerfile, re.M)]
    check(re.search(r'^ENTRYPOINT\s+\[\s*"/slpocapp"\s*\]', dockerfile, re.M) is not None,
          "Dockerfile.scratch ENTRYPOINT is the exec form [\"/slpocapp\"]")
    psc, csc = k.podspec.get("securityContext") or {}, c.get("securityContext") or {}
    if check(len(user) == 1, "Dockerfile.scratch has one numeric USER uid:gid"):
        uid, gid = map(int, user[-1])
        for name, sc in (("pod", psc), ("container", csc)):
            check(sc.get("runAsUser") == uid and sc.get("runAsGroup") == gid,
                  f"{name} securityContext runAsUser/runAsGroup {sc.get('runAsUser')}/{sc.get('runAsGroup')} "
                  f"equal the image's USER {uid}:{gid}")
    check(http is not None and expose == [http["containerPort"]],
          f"Dockerfile.scratch EXPOSE {expose} equals containerPort http")


def check_hardening(k: Cluster) -> None:
    """Security context, resources, and the shutdown sequence's timing."""
    c, podspec, sa = k.c, k.podspec, k.sa
    psc, csc = podspec.get("securityContext") or {}, c.get("securityContext") or {}
    caps = (csc.get("capabilities") or {}).get("drop") or []
    hardened = {
        "runAsNonRoot": psc.get("runAsNonRoot") is True and csc.get("runAsNonRoot", True) is True,
        "readOnlyRootFilesystem": csc.get("readOnlyRootFilesystem") is True,
        "allowPrivilegeEscalation=false": csc.get("allowPrivilegeEscalation") is False,
        "capabilities drop ALL": caps == ["ALL"],
        "seccomp RuntimeDefault": (psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
        "pod automountServiceAccountToken=false": podspec.get("automountServiceAccountToken") is False,
        "ServiceAccount automountServiceAccountToken=false": sa.get("automountServiceAccountToken") is False,
        f"serviceAccountName is ServiceAccount/{sa['metadata']['name']}": podspec.get("serviceAccountName") == sa["metadata"]["name"],
    }
    bad = [name for name, v in hardened.items() if not v]
    check(not bad, "pod hardening: " + ", ".join(hardened), "missing " + ", ".join(bad))
    res = c.get("resources") or {}
    check(all(res.get(a, {}).get(b) for a in ("requests", "limits") for b in ("cpu", "memory")),
          f"cpu/memory requests and limits set ({res.get('requests')} / {res.get('limits')})")
    sleep = (((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}).get("seconds", 0)
    grace = podspec.get("terminationGracePeriodSeconds", 30)
    check(grace >= sleep + 2, f"terminationGracePeriodSeconds {grace} covers preStop sleep {sleep}s + the app's <1s shutdown")


def check_hpa(k: Cluster) -> None:
    """The HPA's target and bounds, and the adapter rule that serves its metric."""
    hpa = k.hpa
    ref = hpa["spec"]["scaleTargetRef"]
    check(ref.get("kind") == "Deployment" and ref.get("name") == k.dname and ref.get("apiVersion") == "apps/v1",
          f"HPA/{hpa['metadata']['name']} scaleTargetRef is apps/v1 Deployment/{k.dname}", str(ref))
    lo, hi = hpa["spec"].get("minReplicas", 1), hpa["spec"]["maxReplicas"]
    check(lo <= k.dep["spec"].get("replicas", 1) <= hi,
          f"Deployment replicas {k.dep['spec'].get('replicas')} within HPA bounds {lo}..{hi}")
    served = {}
    for r in adapter_rules():
        series = series_metric(r["seriesQuery"])
        served[adapter_output_name(r, series)] = (r, series)
    hpa_metrics = [m for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    check(len(hpa_metrics) == len(hpa["spec"]["metrics"]) and hpa_metrics,
          "HPA metrics are of type Pods (per-pod custom metrics)")
    for m in hpa_metrics:
        name = m["pods"]["metric"]["name"]
        if not check(name in served, f"HPA metric {name} is served by an adapter rule",
                     f"adapter serves {sorted(served)}"):
            continue
        r, series = served[name]
        ok(f"adapter rule maps series {series} to {name} (name.matches {r['name']['matches']!r}, as {r['name']['as']!r})")
        check_adapter_rule(k, r)
        target = m["pods"]["target"]
        check(target.get("type") == "AverageValue" and str(target.get("averageValue")) == "2",
              f"HPA target AverageValue {target.get('averageValue')!r} (the seed's)")
    check(load_yaml(ADAPTER_VALUES)["rules"].get("default") is False, "adapter values: rules.default is false")


def check_adapter_rule(k: Cluster, r: dict) -> None:
    """The rule's series, resource labels and rate window against the scrape
    intervals and the HPA's scale-down stabilization."""
    sq = r["seriesQuery"]
    check(re.search(r'namespace\s*!=\s*""', sq) and re.search(r'pod\s*!=\s*""', sq),
          "adapter seriesQuery requires non-empty namespace and pod labels", sq)
    ov = r["resources"]["overrides"]
    check(ov.get("namespace", {}).get("resource") == "namespace" and ov.get("pod", {}).get("resource") == "pod",
          "adapter maps label namespace -> namespace and pod -> pod", str(ov))
    q = r["metricsQuery"]
    check(all(f in q for f in ADAPTER_TEMPLATE_FIELDS), "adapter metricsQuery uses <<.Series>>, <<.LabelMatchers>>, <<.GroupBy>>")
    windows = rate_windows(q)
    intervals = {"ServiceMonitor": k.sm["spec"]["endpoints"][0].get("interval", "30s")}
    for job in load_yaml(SCRAPE_CONFIGS):
        intervals[f"scrape job {job['job_name']}"] = job.get("scrape_interval", "1m")
    if check(len(windows) == 1, f"adapter metricsQuery has one rate window ({windows})"):
        w = parse_duration(windows[0])
        for who, iv in intervals.items():
            check(w >= 4 * parse_duration(iv), f"adapter rate window {windows[0]} >= 4 x {who} interval {iv}")
        sd = (k.hpa["spec"].get("behavior") or {}).get("scaleDown", {}).get("stabilizationWindowSeconds", 300)
        check(sd >= w, f"HPA scaleDown stabilization {sd}s >= the metric's rate window {windows[0]}")


def check_servicemonitor(k: Cluster) -> None:
    sm, svc, sname = k.sm, k.svc, k.sname
    check(selector_matches(sm["spec"]["selector"], svc["metadata"].get("labels") or {}),
          f"ServiceMonitor/{sm['metadata']['name']} selects Service/{sname} by its labels")
    check(not sm["spec"].get("namespaceSelector"), "ServiceMonitor looks in its own namespace (no namespaceSelector)")
    svc_port_names = {p.get("name") for p in svc["spec"]["ports"]}
    ep_keys = {"port", "path", "interval", "scrapeTimeout", "honorLabels", "scheme", "relabelings", "metricRelabelings"}
    for ep in sm["spec"]["endpoints"]:
        check(ep.get("port") in svc_port_names, f"ServiceMonitor endpoint port {ep.get('port')!r} is a Service port name")
        check(set(ep) <= ep_keys, "ServiceMonitor endpoint uses known fields only", f"unknown {sorted(set(ep) - ep_keys)}")
        check(ep.get("path", "/metrics") == "/metrics" and ep.get("honorLabels") is True,
              "ServiceMonitor scrapes /metrics with honorLabels: true")
        check(parse_duration(ep.get("scrapeTimeout", "10s")) <= parse_duration(ep.get("interval", "30s")),
              "ServiceMonitor scrapeTimeout <= interval")
    check(not sm["spec"].get("jobLabel"), f"ServiceMonitor sets no jobLabel, so job = Service name {sname}")


def check_scrape_configs(k: Cluster) -> None:
    """The plain scrape config agrees with the ServiceMonitor route."""
    for job in load_yaml(SCRAPE_CONFIGS):
        jn = job["job_name"]
        check(jn == k.sname, f"scrape job {jn} is named like the Service (same job label as the ServiceMonitor route)")
        check(job.get("honor_labels") is True, f"scrape job {jn} honors the app's labels like the ServiceMonitor")
        check(job.get("scrape_interval") == k.sm["spec"]["endpoints"][0].get("interval"),
              f"scrape job {jn} interval equals the ServiceMonitor's")
        check_scrape_relabel_rules(k, job)
        check_kubernetes_sd(job)
        if k.http is not None:
            check_simulated_relabeling(k, job)


def check_scrape_relabel_rules(k: Cluster, job: dict) -> None:
    """What the job's relabel_configs keep and which target labels they set."""
    jn, http = job["job_name"], k.http
    relabels = job.get("relabel_configs") or []
    keeps = {r["source_labels"][0]: r["regex"] for r in relabels if r.get("action") == "keep"}
    pod_label_keeps = {key: v for key, v in keeps.items() if key.startswith("__meta_kubernetes_pod_label_")}
    matched = all(
        any(re.fullmatch(regex, str(val)) for key, val in k.pod_labels.items()
            if meta_label_suffix(key) == meta[len("__meta_kubernetes_pod_label_"):])
        for meta, regex in pod_label_keeps.items())
    check(bool(pod_label_keeps) and matched, f"scrape job {jn} keeps pods by a label the pod template has", str(pod_label_keeps))
    port_re = keeps.get("__meta_kubernetes_pod_container_port_name")
    check(port_re is not None and http is not None and re.fullmatch(port_re, http["name"]) is not None,
          f"scrape job {jn} keeps the container port named {port_re!r}")
    targets = {r.get("target_label"): r["source_labels"][0] for r in relabels if r.get("target_label")}
    check(targets.get("namespace") == "__meta_kubernetes_namespace" and targets.get("pod") == "__meta_kubernetes_pod_name",
          f"scrape job {jn} sets namespace and pod target labels from service discovery")


def check_simulated_relabeling(k: Cluster, job: dict) -> None:
    """Relabeling simulated on targets that role pod would discover."""
    jn, http, cname, pod_labels = job["job_name"], k.http, k.c["name"], k.pod_labels
    relabels = job.get("relabel_configs") or []
    got = relabel(pod_target(job, pod_labels, http, cname), relabels)
    want = {"job": k.sname, "namespace": "default", "pod": "app-5d9c7b-x2x4q"}
    check(got is not None and all(got.get(key) == v for key, v in want.items()),
          f"scrape job {jn} relabeling keeps the app pod's port http as {got}")
    other_port = dict(http, name="metrics-other", containerPort=9999)
    check(relabel(pod_target(job, pod_labels, other_port, cname), relabels) is None,
          f"scrape job {jn} relabeling drops the pod's other ports")
    other_pod = {key: ("not-" + v) for key, v in pod_labels.items()}
    check(relabel(pod_target(job, other_pod, http, "other"), relabels) is None,
          f"scrape job {jn} relabeling drops other pods")
    check(relabel(pod_target(job, pod_labels, http, cname, phase="Succeeded"), relabels) is None,
          f"scrape job {jn} relabeling drops finished pods")


def check_netpol_pdb(k: Cluster) -> None:
    http = k.http
    spec = k.netpol["spec"]
    check(selector_matches(spec["podSelector"], k.pod_labels), f"NetworkPolicy/{k.netpol['metadata']['name']} podSelector matches the pods")
    ingress_ports = [p for rule in spec.get("ingress") or [] for p in rule.get("ports") or []]
    check(bool(ingress_ports) and all(r.get("ports") for r in spec.get("ingress") or []),
          "NetworkPolicy ingress rules all name ports")
    allowed = [container_port(k.c, p.get("port")) for p in ingress_ports]
    check(http is not None and all(a is not None and a["containerPort"] == http["containerPort"] for a in allowed)
          and all(p.get("protocol", "TCP") == "TCP" for p in ingress_ports),
          f"NetworkPolicy admits only the container port {http and http['containerPort']}/TCP",
          str(ingress_ports))
    check("Egress" in spec.get("policyTypes", []) and not spec.get("egress"),
          "NetworkPolicy denies all egress (policyTypes Egress, no egress rules)")
    check(selector_matches(k.pdb["spec"]["selector"], k.pod_labels), f"PodDisruptionBudget/{k.pdb['metadata']['name']} selects the pods")


def check_query_names(k: Cluster) -> None:
    """Every query names our objects and known metrics only."""
    exprs = adapter_exprs() + dashboard_exprs(k.objs) + alert_exprs(k.objs)
    for label, want in (("job", k.sname), ("deployment", k.dname), ("horizontalpodautoscaler", k.hpa["metadata"]["name"])):
        used = set().union(*(label_matchers(e, label) for _, e in exprs))
        check(used <= {want}, f"every {label}=\"...\" matcher in queries names {want}", f"found {sorted(used)}")
    known = APP_METRICS | KUBE_STATE_METRICS | PROMETHEUS_METRICS
    for where, e in exprs:
        names = promql_metric_names(e)
        check(bool(names) and names <= known, f"{where} queries known metrics {sorted(names)}",
              f"unknown {sorted(names - known)}")


def check_dashboards(k: Cluster) -> None:
    dash = dashboards(k.objs)
    check(len(dash) >= 1, "a Grafana dashboard ConfigMap labelled grafana_dashboard exists")
    for cm in k.objs.all("ConfigMap"):
        if "grafana_dashboard" in (cm["metadata"].get("labels") or {}):
            check(cm["metadata"]["labels"]["grafana_dashboard"] == "1",
                  f"ConfigMap/{cm['metadata']['name']} label grafana_dashboard is \"1\" (kube-prometheus-stack sidecar default)")
    for where, d in dash:
        ids = [p.get("id") for p in d.get("panels", [])]
        check(len(ids) == len(set(ids)) and None not in ids, f"{where}: panel ids unique ({len(ids)} panels)")
        ds_ok = all(p.get("datasource", {}).get("uid") == "${datasource}" and
                    all(t.get("datasource", {}).get("uid") == "${datasource}" for t in p.get("targets", []))
                    for p in d.get("panels", []))
        check(ds_ok, f"{where}: every panel and query uses the $datasource variable")


def check_prometheusrule(k: Cluster) -> None:
    """The PrometheusRule's shape (kubernetes-validate has no schema for it)."""
    pr = k.pr
    names = [r.get("alert") for g in pr["spec"]["groups"] for r in g["rules"]]
    check(len(names) == len(set(names)) and all(names), f"PrometheusRule alerts named and unique: {names}")
    check(all(r.get("labels", {}).get("severity") and r.get("annotations", {}).get("summary")
              for g in pr["spec"]["groups"] for r in g["rules"]), "every alert has a severity and a summary")


# Metrics actually exported by the binary


def exported_metric_names() -> set[str] | None:
    """Sample names in a saved /metrics scrape, and its histograms' family names.

    Reads the file named by env METRICS_SAMPLE (the body of GET /metrics of the
    running binary, Prometheus text 0.0.4 or OpenMetrics) and returns the set
    of sample names in it (`foo_total`, `foo_bucket`, ... as PromQL sees
    them). Returns None when METRICS_SAMPLE is not set.
    """
    path = os.environ.get("METRICS_SAMPLE")
    if not path:
        return None
    names = set()
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        # A histogram's family name too: PromQL selects a native histogram by
        # it (the protobuf format carries its native buckets; a text scrape
        # shows only its classic series).
        t = re.match(r"# TYPE ([a-zA-Z_:][\w:]*) histogram$", line)
        if t:
            names.add(t.group(1))
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][\w:]*)", line)
        if not m:
            raise SystemExit(f"FAIL METRICS_SAMPLE {path}: cannot read a sample name from {line!r}")
        names.add(m.group(1))
    if not names:
        raise SystemExit(f"FAIL METRICS_SAMPLE {path} holds no samples")
    return names


def cmd_metrics_sample(built: str) -> None:
    exported = exported_metric_names()
    if exported is None:
        ok("METRICS_SAMPLE not set: skipped the check against a real scrape")
        return
    objs = Objects(built)
    path = os.environ["METRICS_SAMPLE"]
    ok(f"METRICS_SAMPLE {path}: {len(exported)} sample names")
    # The adapter's series, and every metric the dashboards and alerts name,
    # except kube-state-metrics' and Prometheus' own.
    wanted: dict[str, list[str]] = {}
    for r in adapter_rules():
        wanted.setdefault(series_metric(r["seriesQuery"]), []).append("adapter seriesQuery")
    for where, e in dashboard_exprs(objs) + alert_exprs(objs) + adapter_exprs():
        for n in promql_metric_names(e):
            wanted.setdefault(n, []).append(where)
    for n in sorted(wanted):
        if n in KUBE_STATE_METRICS or n in PROMETHEUS_METRICS:
            continue
        check(n in exported, f"the binary exports {n} (used by {len(wanted[n])} queries)",
              f"not in {path}; used by {wanted[n]}")
    contract = APP_METRICS - exported
    check(not contract, "the binary exports every metric of its documented contract", f"missing {sorted(contract)}")
    # The adapter lists series with seriesQuery and maps them to pods by the
    # override labels: the real scrape must have a series that matches it.
    samples = exported_samples()
    for r in adapter_rules():
        sq = r["seriesQuery"]
        name, matchers = parse_selector(sq)
        hits = [labels for n, labels in samples if n == name and all(m(labels) for m in matchers)]
        override_labels = sorted((r.get("resources") or {}).get("overrides") or {})
        if check(bool(hits), f"adapter seriesQuery {sq} matches {len(hits)} series of the real scrape",
                 f"series of {name} in {path}: {[l for n, l in samples if n == name]}"):
            check(all(all(h.get(l) for l in override_labels) for h in hits),
                  f"those series carry the adapter's override labels {override_labels}: "
                  + "; ".join("{" + ",".join(f'{k}="{v}"' for k, v in sorted(h.items())) + "}" for h in hits))


_SAMPLE_LABEL = re.compile(r'\s*([a-zA-Z_][\w]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def exported_samples() -> list[tuple[str, dict[str, str]]]:
    """(sample name, labels) of every sample line in METRICS_SAMPLE."""
    out = []
    for line in Path(os.environ["METRICS_SAMPLE"]).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][\w:]*)(\{)?", line)
        labels, pos = {}, m.end()
        if m.group(2):
            while not line.startswith("}", pos):
                lm = _SAMPLE_LABEL.match(line, pos)
                if not lm:
                    raise SystemExit(f"FAIL METRICS_SAMPLE: cannot read the labels of {line!r}")
                labels[lm.group(1)] = re.sub(r"\\(.)", lambda e: {"n": "\n"}.get(e.group(1), e.group(1)), lm.group(2))
                pos = lm.end()
        out.append((m.group(1), labels))
    return out


def parse_selector(selector: str):
    """`name{l="v",l!="",l=~"re",l!~"re"}` -> (name, [predicate on a label dict])."""
    m = re.fullmatch(r"\s*([a-zA-Z_:][\w:]*)\s*(?:\{(.*)\})?\s*", selector)
    if not m:
        raise SystemExit(f"FAIL cannot parse selector {selector!r}")
    preds = []
    for lm in re.finditer(r'([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', m.group(2) or ""):
        label, op, val = lm.groups()
        rx = re.compile(f"(?:{val})")
        preds.append({
            "=": lambda l, k=label, v=val: l.get(k, "") == v,
            "!=": lambda l, k=label, v=val: l.get(k, "") != v,
            "=~": lambda l, k=label, r=rx: r.fullmatch(l.get(k, "")) is not None,
            "!~": lambda l, k=label, r=rx: r.fullmatch(l.get(k, "")) is None,
        }[op])
    return m.group(1), preds


def main(argv: list[str]) -> int:
    cmds = {
        "prepare": (cmd_prepare, 2),
        "kubernetes-validate": (cmd_kubernetes_validate, 2),
        "skips": (cmd_skips, 1),
        "strip-skips": (cmd_strip_skips, 2),
        "stale-skips": (cmd_stale_skips, 2),
        "consistency": (cmd_consistency, 1),
        "metrics-sample": (cmd_metrics_sample, 1),
    }
    if len(argv) < 2 or argv[1] not in cmds or len(argv) - 2 != cmds[argv[1]][1]:
        print(__doc__, file=sys.stderr)
        return 2
    fn, _ = cmds[argv[1]]
    try:
        fn(*argv[2:])
    except ManifestError as e:
        fail(str(e))
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

