#!/usr/bin/env python3
"""An OpenMetrics page on standard input, checked by prometheus_client's OpenMetrics parser
(strict: the `# EOF`, counter and histogram rules, exemplars): prints what it found, or
what is wrong and exits 1. CI links it as `openmetrics-check` for the e2e tests."""

import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def main():
    page = sys.stdin.read()
    try:
        families = list(text_string_to_metric_families(page))
    except Exception as e:  # the parser raises ValueError and others, each a reason
        print(f"not OpenMetrics: {e}", file=sys.stderr)
        return 1
    exemplars = sum(1 for f in families for s in f.samples if s.exemplar)
    print(f"{len(families)} families, {exemplars} exemplars")
    return 0


if __name__ == "__main__":
    sys.exit(main())
