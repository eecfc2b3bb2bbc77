"""Parses an exposition with prometheus-client's parsers and compares it with what
the Rust test expects: every family (name, type, HELP) and every sample (name,
labels, value), exactly, with nothing missing and nothing extra. With
"partial": true in the expected file, only the samples listed are checked (the
exposition of a live process also holds values no test can predict).

usage: parse_back.py text|openmetrics EXPOSITION EXPECTED_JSON
"""
import json
import math
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text


def same(a, b):
    # Numeric equality (NaN equal to NaN). The text parser reads "-0" as the integer 0,
    # so the sign of a zero cannot survive it; -0.0 == 0.0 as numbers.
    return (math.isnan(a) and math.isnan(b)) or a == b


def main():
    fmt, exposition_path, expected_path = sys.argv[1:]
    with open(exposition_path, encoding="utf-8", newline="") as f:
        text = f.read()
    with open(expected_path, encoding="utf-8") as f:
        expected = json.load(f)
    parse = parse_text if fmt == "text" else parse_openmetrics
    # Both parsers return generators: consume them whole, so every line is parsed.
    families = list(parse(text))

    problems = []
    partial = expected.get("partial", False)
    got_families = [[fam.name, fam.type, fam.documentation] for fam in families]
    if not partial and got_families != expected["families"]:
        problems.append(f"families differ:\n  got      {got_families}\n  expected {expected['families']}")

    got = {}
    for fam in families:
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            if key in got:
                problems.append(f"duplicate sample {key}")
            got[key] = s.value
    want = {}
    for name, labels, value in expected["samples"]:
        want[(name, tuple(sorted(labels.items())))] = value
    lo, hi = expected["created_window"]
    for key, value in want.items():
        if key not in got:
            problems.append(f"missing {key}")
        elif value is None:  # a _created sample: any time in the test's window
            if not lo <= got[key] <= hi:
                problems.append(f"{key}: created {got[key]} outside [{lo}, {hi}]")
        elif not same(got[key], float(value)):
            problems.append(f"{key}: got {got[key]!r}, expected {value!r}")
    if not partial:
        for key in got.keys() - want.keys():
            problems.append(f"unexpected {key} = {got[key]!r}")

    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print(f"{fmt}: {len(families)} families, {len(got)} samples parsed back exactly")


main()
