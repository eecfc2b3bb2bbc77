"""A model of the Kubernetes HPA controller (autoscaling/v2) for one Pods
metric with an AverageValue target, as manifests/hpa.yaml uses it.

It follows the controller of Kubernetes v1.30: pkg/controller/podautoscaler/
horizontal.go (reconcileAutoscaler, normalizeDesiredReplicasWithBehaviors,
stabilizeRecommendationWithBehaviors, convertDesiredReplicasWithBehaviorRate,
calculateScaleUpLimitWithScalingRules, calculateScaleDownLimitWithBehaviors,
getReplicasChangePerPeriod, storeScaleEvent) and replica_calculator.go
(calcPlainMetricReplicas, groupPods), written anew from the documented rules
below. Every time is in cluster seconds and passed in by the caller, so the
same model runs in real time, faster, or on paper (scripts/test_hpa_model.py).

The documentation of each rule, all on
https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/ :
  #algorithm-details          desiredReplicas = ceil(currentReplicas x
                              currentMetricValue / desiredMetricValue); the
                              tolerance; pods being deleted and failed pods are
                              set aside, pods with missing metrics and not-yet-
                              ready pods are handled conservatively (below)
  #how-does-a-horizontalpodautoscaler-work
                              the control loop runs every
                              --horizontal-pod-autoscaler-sync-period (15 s)
  #scaling-policies           Pods / Percent policies over periodSeconds;
                              selectPolicy Max (default), Min, Disabled
  #stabilization-window       scale up: the lowest recommendation of the window;
                              scale down: the highest
  #default-behavior           defaults of a missing behavior field
and https://kubernetes.io/docs/reference/command-line-tools-reference/kube-controller-manager/
for the controller's flags: --horizontal-pod-autoscaler-tolerance (0.1),
--horizontal-pod-autoscaler-sync-period (15s),
--horizontal-pod-autoscaler-downscale-stabilization (5m0s).

What the controller does with pods (groupPods, for a metric other than cpu):
  - a pod being deleted (deletionTimestamp set) or Failed is ignored;
  - a Pending pod is "unready": left out, and on a scale-up counted as using 0;
  - a pod without a metric value is "missing": on a scale-up counted as using
    0, on a scale-down as using exactly the target;
  - a Running pod with a value counts, ready or not (only the cpu resource
    metric looks at the Ready condition).
Then, if pods were filled in, the ratio is computed again and the controller
keeps the current count if that changes the direction or falls within the
tolerance. No value at all: the HPA cannot compute (ScalingActive false) and
leaves the scale alone.

Values are milli-units, as the custom metrics API carries them (the adapter
truncates to milli-units, the controller reads MilliValue()); the average is
the integer division the controller does.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from manifests import hpa_pods_metric  # noqa: E402

TOLERANCE = 0.1           # --horizontal-pod-autoscaler-tolerance default
SYNC_PERIOD = 15.0        # --horizontal-pod-autoscaler-sync-period default, seconds
DOWNSCALE_STABILIZATION = 300  # --horizontal-pod-autoscaler-downscale-stabilization default, seconds

# #default-behavior: what the API server fills in for a missing field.
DEFAULT_SCALE_UP = {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15},
                                 {"type": "Pods", "value": 4, "periodSeconds": 15}]}
DEFAULT_SCALE_DOWN = {"stabilizationWindowSeconds": None,  # the controller's downscale stabilization
                      "selectPolicy": "Max",
                      "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}


class NoMetrics(Exception):
    """No usable metric value: the controller does not scale (ScalingActive false)."""


@dataclass(frozen=True)
class Policy:
    type: str        # "Pods" or "Percent"
    value: int
    period: float    # seconds


@dataclass(frozen=True)
class Rules:
    """One direction of spec.behavior."""
    stabilization: float
    select: str      # "Max", "Min" or "Disabled"
    policies: tuple[Policy, ...]

    @staticmethod
    def from_spec(spec: dict | None, default: dict, downscale_stabilization: float) -> "Rules":
        spec = spec or {}
        window = spec.get("stabilizationWindowSeconds", default["stabilizationWindowSeconds"])
        if window is None:
            window = downscale_stabilization
        policies = spec.get("policies") or default["policies"]
        return Rules(float(window), spec.get("selectPolicy", default["selectPolicy"]),
                     tuple(Policy(p["type"], int(p["value"]), float(p["periodSeconds"])) for p in policies))


@dataclass(frozen=True)
class Spec:
    """What the model reads from the HPA object."""
    min_replicas: int
    max_replicas: int
    metric: str
    target_milli: int
    up: Rules
    down: Rules

    @staticmethod
    def from_hpa(hpa: dict, downscale_stabilization: float = DOWNSCALE_STABILIZATION) -> "Spec":
        spec = hpa["spec"]
        if len(spec["metrics"]) != 1:
            raise ValueError("the model handles exactly one metric, of type Pods")
        metric, target = hpa_pods_metric(hpa)
        behavior = spec.get("behavior") or {}
        return Spec(
            min_replicas=int(spec.get("minReplicas", 1)),
            max_replicas=int(spec["maxReplicas"]),
            metric=metric,
            target_milli=milli(target),
            up=Rules.from_spec(behavior.get("scaleUp"), DEFAULT_SCALE_UP, downscale_stabilization),
            down=Rules.from_spec(behavior.get("scaleDown"), DEFAULT_SCALE_DOWN, downscale_stabilization),
        )


def milli(value: float) -> int:
    """A value as milli-units, truncated as prometheus-adapter does."""
    return int(value * 1000.0)


@dataclass(frozen=True)
class Pod:
    """What the controller's pod lister shows of one pod."""
    name: str
    phase: str = "Running"     # Pending, Running, Succeeded, Failed
    deleting: bool = False     # deletionTimestamp set
    ready: bool = True         # the Ready condition (not used for a Pods metric; shown)


@dataclass
class Replicas:
    """calcPlainMetricReplicas' answer."""
    replicas: int
    usage_milli: int           # the average the HPA reports (status.currentMetrics)
    ratio: float
    counted: int               # pods whose values (real or filled in) entered the average
    note: str


def plain_metric_replicas(values: dict[str, int], pods: list[Pod], current: int, target_milli: int,
                          tolerance: float = TOLERANCE) -> Replicas:
    """replica_calculator.go calcPlainMetricReplicas with groupPods, for a
    metric other than cpu. `values`: milli-values by pod name (the custom
    metrics API's answer); `current`: the scale's spec.replicas."""
    if not pods:
        raise NoMetrics("no pods returned by selector while calculating replica count")
    ready_count, unready, missing, ignored = 0, set(), set(), set()
    for p in pods:
        if p.deleting or p.phase == "Failed":
            ignored.add(p.name)
        elif p.phase == "Pending":
            unready.add(p.name)
        elif p.name not in values:
            missing.add(p.name)
        else:
            ready_count += 1
    known = {p.name: values[p.name] for p in pods if p.name in values and p.name not in ignored | unready}
    if not known:
        raise NoMetrics("did not receive metrics for targeted pods (pods might be unready)")
    usage = sum(known.values()) // len(known)
    ratio = usage / target_milli
    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not scale_up_with_unready and not missing:
        if abs(1.0 - ratio) <= tolerance:
            return Replicas(current, usage, ratio, len(known), f"|1-{ratio:.3f}| <= {tolerance}: within tolerance")
        n = math.ceil(ratio * ready_count)
        return Replicas(n, usage, ratio, len(known), f"ceil({ratio:.3f} x {ready_count}) = {n}")
    filled = dict(known)
    notes = []
    if missing:
        # Scale-down: a missing pod uses exactly the target; scale-up (ratio > 1
        # or equal): it uses 0.
        fill = target_milli if ratio < 1.0 else 0
        filled.update({name: fill for name in missing})
        notes.append(f"{len(missing)} without a value taken as {fill / 1000:g}")
    if scale_up_with_unready:
        filled.update({name: 0 for name in unready})
        notes.append(f"{len(unready)} pending taken as 0")
    new_usage = sum(filled.values()) // len(filled)
    new_ratio = new_usage / target_milli
    note = "; ".join(notes)
    if abs(1.0 - new_ratio) <= tolerance or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return Replicas(current, usage, new_ratio, len(filled),
                        f"{note}: ratio {ratio:.3f} -> {new_ratio:.3f} within tolerance or turned: keep {current}")
    n = math.ceil(new_ratio * len(filled))
    if (new_ratio < 1.0 and n > current) or (new_ratio > 1.0 and n < current):
        return Replicas(current, usage, new_ratio, len(filled), f"{note}: ceil would turn the direction: keep {current}")
    return Replicas(n, usage, new_ratio, len(filled), f"{note}: ceil({new_ratio:.3f} x {len(filled)}) = {n}")


@dataclass
class Decision:
    """One sync of the controller, for the timeline."""
    time: float
    current: int
    values: dict[str, int]
    usage_milli: int | None
    ratio: float | None
    raw: int | None            # the metric's recommendation (before stabilization and limits)
    stabilized: int | None
    desired: int
    reason: str


@dataclass
class Controller:
    """The HPA controller's state for one HPA: the recommendations of the
    stabilization windows and the scale events the policies count."""
    spec: Spec
    tolerance: float = TOLERANCE
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    up_events: list[tuple[float, int]] = field(default_factory=list)
    down_events: list[tuple[float, int]] = field(default_factory=list)

    def sync(self, now: float, current: int, pods: list[Pod], values: dict[str, int]) -> Decision:
        """reconcileAutoscaler: one sync at `now` with the scale's spec.replicas
        `current`; returns the decision, records it, and the caller sets the
        scale to decision.desired."""
        s = self.spec
        if current == 0 and s.min_replicas != 0:
            return Decision(now, current, values, None, None, None, None, 0, "scaling disabled (replicas 0)")
        if current > s.max_replicas:
            return self._rescale(Decision(now, current, values, None, None, None, None, s.max_replicas,
                                          "current above maxReplicas"))
        if current < s.min_replicas:
            return self._rescale(Decision(now, current, values, None, None, None, None, s.min_replicas,
                                          "current below minReplicas"))
        try:
            r = plain_metric_replicas(values, pods, current, s.target_milli, self.tolerance)
        except NoMetrics as e:
            return Decision(now, current, values, None, None, None, None, current, f"no scaling: {e}")
        stabilized = self.stabilize(now, current, r.replicas)
        desired, limit = self.limit_rate(now, current, stabilized)
        reason = r.note + (f"; stabilized to {stabilized}" if stabilized != r.replicas else "") + (f"; {limit}" if limit else "")
        return self._rescale(Decision(now, current, values, r.usage_milli, r.ratio, r.replicas, stabilized, desired, reason))

    def _rescale(self, d: Decision) -> Decision:
        if d.desired != d.current:
            self.store_event(d.time, d.current, d.desired)
        return d

    # -- #stabilization-window
    def stabilize(self, now: float, current: int, desired: int) -> int:
        """stabilizeRecommendationWithBehaviors: the current count, raised to
        the lowest recommendation of the scale-up window and lowered to the
        highest of the scale-down window (this one included); then records
        `desired`. A recommendation exactly one window old has left it (the
        controller's syncs come a little more than 15 s apart)."""
        up_cut, down_cut = now - self.spec.up.stabilization, now - self.spec.down.stabilization
        up, down = desired, desired
        for t, rec in self.recommendations:
            if t > up_cut:
                up = min(up, rec)
            if t > down_cut:
                down = max(down, rec)
        keep = max(self.spec.up.stabilization, self.spec.down.stabilization)
        self.recommendations = [(t, rec) for t, rec in self.recommendations if t > now - keep]
        self.recommendations.append((now, desired))
        return min(max(current, up), down)

    # -- #scaling-policies
    def changed_in(self, events: list[tuple[float, int]], now: float, period: float) -> int:
        """getReplicasChangePerPeriod: pods added (or removed) within the period."""
        return sum(n for t, n in events if t > now - period)

    def scale_up_limit(self, now: float, current: int) -> int:
        rules = self.spec.up
        if rules.select == "Disabled":
            return current
        proposals = []
        for p in rules.policies:
            start = current - self.changed_in(self.up_events, now, p.period) + self.changed_in(self.down_events, now, p.period)
            proposals.append(start + p.value if p.type == "Pods" else math.ceil(start * (1 + p.value / 100)))
        return min(proposals) if rules.select == "Min" else max(proposals)

    def scale_down_limit(self, now: float, current: int) -> int:
        rules = self.spec.down
        if rules.select == "Disabled":
            return current
        proposals = []
        for p in rules.policies:
            start = current - self.changed_in(self.up_events, now, p.period) + self.changed_in(self.down_events, now, p.period)
            proposals.append(start - p.value if p.type == "Pods" else int(start * (1 - p.value / 100)))
        return max(proposals) if rules.select == "Min" else min(proposals)

    def limit_rate(self, now: float, current: int, desired: int) -> tuple[int, str]:
        """convertDesiredReplicasWithBehaviorRate: the policies' limit and
        min/max replicas."""
        s = self.spec
        if desired > current:
            limit = max(self.scale_up_limit(now, current), current)
            allowed = min(s.max_replicas, limit)
            why = "ScaleUpLimit" if s.max_replicas > limit else "TooManyReplicas"
            if desired > allowed:
                return allowed, f"{why}: {desired} -> {allowed}"
        elif desired < current:
            limit = min(self.scale_down_limit(now, current), current)
            allowed = max(s.min_replicas, limit)
            why = "ScaleDownLimit" if s.min_replicas < limit else "TooFewReplicas"
            if desired < allowed:
                return allowed, f"{why}: {desired} -> {allowed}"
        return desired, ""

    def store_event(self, now: float, before: int, after: int) -> None:
        """storeScaleEvent (events older than the longest period are never
        counted again; the controller reuses their slots, this drops them)."""
        if after > before:
            longest = max(p.period for p in self.spec.up.policies)
            self.up_events = [(t, n) for t, n in self.up_events if t > now - longest] + [(now, after - before)]
        else:
            longest = max(p.period for p in self.spec.down.policies)
            self.down_events = [(t, n) for t, n in self.down_events if t > now - longest] + [(now, before - after)]
