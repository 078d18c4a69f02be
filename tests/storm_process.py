"""The alarm-storm scenario against the example service, in a process of its own: its delivery
latency is then that of a fresh sandbox, not of an interpreter that has run hundreds of tests
before it. Prints the report as one JSON line. Arguments: the seconds the service spends on
each delivery, and whether it enriches each alarm (a Partner API call per alarm)."""

from __future__ import annotations

import json
import sys

from partner_app.app import Switches
from test_scenarios import run

if __name__ == "__main__":
    slow, enrich = float(sys.argv[1]), sys.argv[2] == "enrich"
    report = run("alarm-storm", Switches(slow=slow, enrich=enrich))
    details = [r.detail for r in report.results]
    print(json.dumps({"passed": report.passed, "metrics": report.metrics, "details": details}))
