"""``make bench``: every benchmark in one run and one report.

Runs the four benchmarks one after another (never two at once on this 2-core machine):
``run.py`` (the authenticated Partner, Apps and dealer API lists vs bare Starlette, measured
in the same run, and a cached snapshot), ``tokens.py``, ``figures.py`` and ``storm.py``. Each prints
its table; this script gathers them into ``bench/results.md`` after the machine description,
and exits 1 if any target was missed.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SCRIPTS = (
    ("Partner, Apps and dealer API vs bare Starlette, snapshots", "run.py"),
    ("Token endpoint", "tokens.py"),
    ("Webhooks, fixture, reset, journal memory", "figures.py"),
    ("Alarm storm scenario", "storm.py"),
)


def main() -> int:
    sections: list[str] = []
    failed: list[str] = []
    for title, script in SCRIPTS:
        print(f"\n== {title} ({script}) ==", flush=True)
        done = subprocess.run(
            [sys.executable, str(BENCH / script), *sys.argv[1:]],
            capture_output=True,
            text=True,
            check=False,
        )
        print(done.stdout, end="", flush=True)
        if done.returncode != 0:
            failed.append(script)
            print(done.stderr[-2000:], file=sys.stderr)
        sections.append(f"## {title} (`bench/{script}`)\n\n```\n{done.stdout.strip()}\n```\n")
    machine = (BENCH / "results.md").read_text().split("## Machine", 1)
    header = (
        f"# `make bench` report\n\n{datetime.now(UTC).isoformat(timespec='seconds')}; "
        f"{'every target met' if not failed else 'missed in: ' + ', '.join(failed)}.\n\n"
    )
    details = "## Machine" + machine[1] if len(machine) == 2 else ""
    (BENCH / "results.md").write_text(header + "\n".join(sections) + "\n" + details)
    print(f"\nreport written to bench/results.md ({'PASS' if not failed else 'FAIL'})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
