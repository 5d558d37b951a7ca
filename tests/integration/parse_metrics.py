#!/usr/bin/python3
"""Parses a Prometheus text exposition with the prometheus_client library's own parser
(Debian's python3-prometheus-client) and prints one sample per line:

    <sample name>|<label>=<value>,<label>=<value>|<value>

labels sorted by name. Exits non-zero, with the parser's error, when the text does not
parse, or when a family breaks the naming rules the admin listener promises (counters
end in _total; no label carries a value that looks like a citizen id)."""
import re
import sys

from prometheus_client.parser import text_string_to_metric_families


def main() -> int:
    text = open(sys.argv[1], encoding="utf-8").read()
    families = list(text_string_to_metric_families(text))
    problems = []
    for family in families:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", family.name):
            problems.append(f"{family.name}: not snake_case")
        for sample in family.samples:
            if family.type == "counter" and not (
                sample.name.endswith("_total") or sample.name.endswith("_created")
            ):
                problems.append(f"{sample.name}: a counter sample without _total")
            for key, value in sample.labels.items():
                if re.search(r"\d{11}", value):
                    problems.append(f"{sample.name}: label {key} looks like a citizen id")
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            print(f"{sample.name}|{labels}|{sample.value!r}")
    for p in problems:
        print("problem: " + p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
