"""Unit tests of the HPA controller model (scripts/hpa_model.py) and of the
story on paper that scripts/hpa_sim.py compares its runs with.

  python3 -m unittest discover -s scripts -p 'test_hpa_model.py'     # from the repository root
  cd scripts && python3 -m unittest test_hpa_model

Needs PyYAML (the model reads manifests/hpa.yaml).
"""

from __future__ import annotations

import os
import sys
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.chdir(HERE.parent)  # manifests/ paths are relative to the repository root

import hpa_model as hm  # noqa: E402
import hpa_sim  # noqa: E402
import manifests as mf  # noqa: E402


def spec(up=None, down=None, lo=2, hi=6, target="2") -> hm.Spec:
    hpa = {"spec": {"minReplicas": lo, "maxReplicas": hi,
                    "metrics": [{"type": "Pods", "pods": {"metric": {"name": "m"},
                                                          "target": {"type": "AverageValue", "averageValue": target}}}],
                    "behavior": {k: v for k, v in (("scaleUp", up), ("scaleDown", down)) if v is not None}}}
    return hm.Spec.from_hpa(hpa)


def pods(n: int, **kw) -> list[hm.Pod]:
    return [hm.Pod(f"p{i}", **kw) for i in range(n)]


def values(*per_pod: float) -> dict[str, int]:
    return {f"p{i}": hm.milli(v) for i, v in enumerate(per_pod)}


class ReadsTheManifest(unittest.TestCase):
    def test_hpa_yaml(self):
        s = hm.Spec.from_hpa(mf.load_yaml(mf.HPA))
        self.assertEqual((s.min_replicas, s.max_replicas, s.target_milli), (2, 6, 2000))
        self.assertEqual(s.metric, "slpocapp_request_operations_per_second")
        self.assertEqual(s.up, hm.Rules(0, "Max", (hm.Policy("Percent", 100, 30), hm.Policy("Pods", 2, 30))))
        self.assertEqual(s.down, hm.Rules(120, "Max", (hm.Policy("Pods", 1, 60),)))

    def test_defaults_of_a_missing_behavior(self):
        s = spec()
        self.assertEqual(s.up, hm.Rules(0, "Max", (hm.Policy("Percent", 100, 15), hm.Policy("Pods", 4, 15))))
        self.assertEqual(s.down, hm.Rules(300, "Max", (hm.Policy("Percent", 100, 15),)))


class Calculation(unittest.TestCase):
    """calcPlainMetricReplicas (#algorithm-details)."""

    def calc(self, vals, ps, current=None):
        return hm.plain_metric_replicas(vals, ps, current if current is not None else len(ps), 2000)

    def test_ceil_of_ratio_times_pods(self):
        r = self.calc(values(10, 10), pods(2))
        self.assertEqual((r.replicas, r.usage_milli, r.ratio), (10, 10000, 5.0))
        self.assertEqual(self.calc(values(2.5, 2.5), pods(2)).replicas, 3)       # ceil(1.25 x 2)
        self.assertEqual(self.calc(values(1.75, 1.75, 1.75, 1.75), pods(4)).replicas, 4)  # ceil(3.5)

    def test_average_value_is_sum_over_target(self):
        # Uneven pods: ceil(current x average / target) = ceil(sum / target).
        self.assertEqual(self.calc(values(9, 0.5, 0.5), pods(3)).replicas, 5)

    def test_tolerance_keeps_the_count(self):
        self.assertEqual(self.calc(values(2.2, 2.1), pods(2), current=2).replicas, 2)   # ratio 1.075
        self.assertEqual(self.calc(values(1.81, 1.81), pods(2), current=2).replicas, 2)  # ratio 0.905
        self.assertEqual(self.calc(values(1.7, 1.7), pods(2), current=2).replicas, 2)    # ceil(1.7) = 2 anyway
        self.assertEqual(self.calc(values(2.3, 2.3), pods(2), current=2).replicas, 3)    # ratio 1.15

    def test_milli_units_truncate_and_the_average_is_integer(self):
        self.assertEqual(hm.milli(1.9999), 1999)
        r = self.calc({"p0": 1000, "p1": 1001, "p2": 1001}, pods(3))
        self.assertEqual(r.usage_milli, 1000)

    def test_deleting_and_failed_pods_are_ignored(self):
        ps = pods(2) + [hm.Pod("p2", deleting=True), hm.Pod("p3", phase="Failed")]
        r = self.calc(values(4, 4, 100, 100), ps, current=3)
        self.assertEqual(r.replicas, 4)  # only p0, p1: ceil(2 x 2)

    def test_missing_pods_count_zero_on_scale_up(self):
        ps = pods(4)
        r = self.calc(values(10, 10), ps)
        # known ratio 5 > 1: p2, p3 taken as 0 -> 20 / 4 / 2 = 2.5 -> ceil(2.5 x 4)
        self.assertEqual((r.replicas, r.counted), (10, 4))

    def test_missing_pods_count_the_target_on_scale_down(self):
        r = self.calc(values(0, 0), pods(4))
        # known ratio 0: p2, p3 taken as 2 -> 4 / 4 / 2 = 0.5 -> ceil(0.5 x 4)
        self.assertEqual(r.replicas, 2)

    def test_filling_in_that_turns_the_direction_keeps_the_count(self):
        r = self.calc(values(2.5), pods(4), current=4)
        # known ratio 1.25, with 3 missing at 0: 2.5 / 4 / 2 = 0.3125 < 1: keep 4
        self.assertEqual(r.replicas, 4)

    def test_not_ready_running_pods_count_for_a_pods_metric(self):
        ps = [hm.Pod("p0"), hm.Pod("p1", ready=False)]
        self.assertEqual(self.calc(values(4, 4), ps).replicas, 4)

    def test_no_values_at_all(self):
        with self.assertRaises(hm.NoMetrics):
            self.calc({}, pods(2))
        c = hm.Controller(spec())
        d = c.sync(15, 2, pods(2), {})
        self.assertEqual(d.desired, 2)
        self.assertIn("no scaling", d.reason)
        self.assertEqual(c.recommendations, [])


class PendingPods(unittest.TestCase):
    def test_pending_pods_count_zero_on_scale_up(self):
        ps = pods(2) + [hm.Pod("p2", phase="Pending")]
        r = hm.plain_metric_replicas(values(6, 6), ps, 3, 2000)
        # known ratio 3 > 1 with a pending pod: it is taken as 0 ->
        # (6 + 6 + 0) / 3 = 4 -> ratio 2 -> ceil(2 x 3) = 6
        self.assertEqual((r.replicas, r.ratio), (6, 2.0))

    def test_pending_pods_are_left_out_on_scale_down(self):
        ps = pods(2) + [hm.Pod("p2", phase="Pending")]
        r = hm.plain_metric_replicas(values(0.5, 0.5), ps, 3, 2000)
        self.assertEqual(r.replicas, 1)  # ceil(0.25 x 2 ready pods)


class Policies(unittest.TestCase):
    """#scaling-policies, with the syncs 15 s apart."""

    def run_syncs(self, s: hm.Spec, current: int, per_pod: float, times: list[float]) -> list[int]:
        c, out = hm.Controller(s), []
        for t in times:
            d = c.sync(t, current, pods(current), {f"p{i}": hm.milli(per_pod) for i in range(current)})
            current = d.desired
            out.append(current)
        return out

    def test_manifest_scale_up_doubles_or_adds_two_per_30_s(self):
        s = hm.Spec.from_hpa(mf.load_yaml(mf.HPA))
        # A huge load: 2 -> 4 at once; the event of t=0 counts for 30 s; at t=30
        # it has left the period (exactly one period old), so 4 -> 6 (max).
        self.assertEqual(self.run_syncs(s, 2, 100, [0, 15, 30, 45]), [4, 4, 6, 6])

    def test_select_min_and_disabled(self):
        up = {"selectPolicy": "Min", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 60},
                                                 {"type": "Pods", "value": 1, "periodSeconds": 60}]}
        self.assertEqual(self.run_syncs(spec(up=up, hi=10), 2, 100, [0, 15, 60]), [3, 3, 4])
        up = {"selectPolicy": "Disabled", "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}]}
        self.assertEqual(self.run_syncs(spec(up=up), 2, 100, [0, 15]), [2, 2])

    def test_percent_rounds_up_on_the_way_up_and_down_on_the_way_down(self):
        up = {"policies": [{"type": "Percent", "value": 10, "periodSeconds": 15}]}
        self.assertEqual(self.run_syncs(spec(up=up, hi=20), 3, 100, [0]), [4])        # ceil(3.3)
        down = {"stabilizationWindowSeconds": 0, "policies": [{"type": "Percent", "value": 50, "periodSeconds": 15}]}
        self.assertEqual(self.run_syncs(spec(down=down, lo=1, hi=20), 5, 0, [0]), [2])  # floor(2.5)

    def test_scale_down_one_pod_per_minute_after_the_window(self):
        s = hm.Spec.from_hpa(mf.load_yaml(mf.HPA))
        c = hm.Controller(s)
        # Recommendation 6 at t=0 (per-pod 2 at 6 pods), then nothing.
        c.sync(0, 6, pods(6), values(*[2] * 6))
        steps, n = [], 6
        for t in range(15, 400, 15):
            d = c.sync(t, n, pods(n), values(*[0] * n)).desired
            if d != n:
                steps.append((t, d))
            n = d
        # The 120 s window holds the recommendation of t=0 until t=120 (it
        # leaves when exactly one window old); then one pod per 60 s.
        self.assertEqual(steps, [(120, 5), (180, 4), (240, 3), (300, 2)])


class Stabilization(unittest.TestCase):
    """#stabilization-window"""

    def test_scale_up_window_takes_the_lowest(self):
        up = {"stabilizationWindowSeconds": 60, "policies": [{"type": "Pods", "value": 10, "periodSeconds": 15}]}
        c = hm.Controller(spec(up=up, hi=20))
        self.assertEqual(c.sync(0, 2, pods(2), values(2, 2)).desired, 2)     # recommendation 2
        self.assertEqual(c.sync(15, 2, pods(2), values(10, 10)).desired, 2)  # min(2, 10) = 2
        self.assertEqual(c.sync(60, 2, pods(2), values(10, 10)).desired, 10)  # t=0 left the window

    def test_scale_down_window_takes_the_highest(self):
        c = hm.Controller(spec(down={"stabilizationWindowSeconds": 30}))
        self.assertEqual(c.sync(0, 6, pods(6), values(*[2] * 6)).desired, 6)
        self.assertEqual(c.sync(15, 6, pods(6), values(*[0.5] * 6)).desired, 6)
        self.assertEqual(c.sync(30, 6, pods(6), values(*[0.5] * 6)).desired, 2)  # max(ceil(1.5), 2 at t=15)

    def test_min_and_max_replicas_clamp(self):
        c = hm.Controller(spec())
        self.assertEqual(c.sync(0, 8, pods(8), values(*[5] * 8)).desired, 6)   # above max
        self.assertEqual(c.sync(15, 1, pods(1), values(0)).desired, 2)        # below min
        self.assertEqual(c.sync(30, 0, [], {}).desired, 0)                    # replicas 0: disabled


class PaperStory(unittest.TestCase):
    """The story of scripts/hpa_sim.py on paper (README.md (The scaling loop on one machine) derives these
    times by hand)."""

    def test_default_story(self):
        s = hm.Spec.from_hpa(mf.load_yaml(mf.HPA))
        story = hpa_sim.default_story(2.0)
        starts = dict(zip((p.name for p in story), hpa_sim.phase_starts(story)))
        steps = hpa_sim.paper_times(s, story, 60, 2)
        rel = [(t - max(v for v in starts.values() if v <= t), a, b) for t, a, b in steps]
        self.assertEqual(rel, [(15, 2, 3), (30, 3, 4), (45, 4, 6),      # seed load
                               (165, 6, 5), (225, 5, 4),                # needs 4
                               (120, 4, 3), (180, 3, 2)])               # no load


if __name__ == "__main__":
    unittest.main()
