"""The alarm-storm scenario (1,000 alarm.created at 100/s, real time) against the example
partner service: wall time and delivery latency percentiles, as ``make bench`` reports them."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

from partner_app.app import create_partner_app  # noqa: E402
from partner_app.testing import register  # noqa: E402

from sandbox.scenario import Runner, load, sandbox_for, summary  # noqa: E402
from sandbox.server import ThreadedServer  # noqa: E402

SECRET = "whsec_bench_storm_0123456789abcdef"


def main() -> int:
    scenario = load(ROOT / "scenarios" / "alarm-storm.yaml")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with sandbox_for(scenario) as sandbox:
        config = register(sandbox, "storm-partner", key, SECRET, dealer_ids=[1001, 1002, 1003])
        with ThreadedServer(create_partner_app(config)) as url:
            started = time.perf_counter()
            report = Runner(sandbox, callback=f"{url}/chekt/webhooks", secret=SECRET).run(scenario)
            wall = time.perf_counter() - started
    print(summary(report).replace(f"{ROOT}{os.sep}", ""))  # the report names no local path
    print(f"\nalarm storm wall time: {wall:.1f} s (1,000 alarms at 100/s, then until all landed)")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
