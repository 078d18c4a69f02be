"""What a run says: a summary table for people and JUnit XML for CI, each with the report
card of the partner's traffic during the run (JUnit: suite properties ``chekt.report.<id>``)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from sandbox.logs import printable
from sandbox.redaction import REDACTED, Scrub
from sandbox.scenario.runner import Report, StepResult


def _detail(report: Report, result: StepResult) -> str:
    """A step's detail without the run's secrets or any credential it quotes."""
    text = result.detail
    for secret in report.secrets:
        text = text.replace(secret, REDACTED)
    return Scrub().text(text)  # credential shapes; free text keeps its words


VERDICTS = {True: "PASS", False: "FAIL", None: "—"}
PROPERTY_VALUES = {True: "pass", False: "fail", None: "unknown"}


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def summary(report: Report) -> str:
    scenario = report.scenario
    lines = [f"{scenario.name} ({scenario.path})"]
    lines.append(f"  {'#':>3}  {'step':<34} {'result':<7} {'time':>8}  detail")
    ran = {r.step.index: r for r in report.results}
    for step in scenario.steps:
        result = ran.get(step.index)
        verdict = "skipped" if result is None else ("PASS" if result.passed else "FAIL")
        seconds = "" if result is None else f"{result.seconds:.2f}s"
        detail = "" if result is None else _clip(printable(_detail(report, result)), 70)
        label = _clip(step.name or step.keyword, 34)
        lines.append(f"  {step.index:>3}  {label:<34} {verdict:<7} {seconds:>8}  {detail}")
    for name, value in report.metrics.items():
        lines.append(f"  {name}: {value}")
    if report.findings:
        lines.append("  report card (how the partner behaved; informative, not a step):")
        for finding in report.findings:
            verdict = VERDICTS[finding["ok"]]
            detail = _clip(printable(finding["detail"]), 70)
            lines.append(f"       {finding['id']:<34} {verdict:<7} {'':>8}  {detail}")
    for result in report.results:
        if not result.passed:  # the table clips it: the whole of it, once
            whole = printable(_detail(report, result), lines=True).replace("\n", "\n    ")
            lines.append(f"  step {result.step.index} failed: {whole}")
    state = "PASSED" if report.passed else "FAILED"
    lines.append(f"  {state} in {report.seconds:.2f} s")
    return "\n".join(lines)


def junit(reports: Sequence[Report], path: str | Path) -> None:
    """JUnit XML: a test suite per scenario, a test case per step."""
    suites = ET.Element("testsuites")
    for report in reports:
        ran = {r.step.index: r for r in report.results}
        failures = sum(1 for r in report.results if not r.passed)
        skipped = len(report.scenario.steps) - len(report.results)
        suite = ET.SubElement(
            suites,
            "testsuite",
            {
                "name": report.scenario.name,
                "tests": str(len(report.scenario.steps)),
                "failures": str(failures),
                "errors": "0",
                "skipped": str(skipped),
                "time": f"{report.seconds:.3f}",
                "file": report.scenario.path,
            },
        )
        if report.findings:  # the report card, as properties: informative, never a failure
            properties = ET.SubElement(suite, "properties")
            for finding in report.findings:
                ET.SubElement(
                    properties,
                    "property",
                    {
                        "name": f"chekt.report.{finding['id']}",
                        "value": PROPERTY_VALUES[finding["ok"]],
                    },
                )
        for step in report.scenario.steps:
            result = ran.get(step.index)
            case = ET.SubElement(
                suite,
                "testcase",
                {
                    "classname": report.scenario.name,
                    "name": f"{step.index:02d} {step.name or step.keyword}",
                    "time": f"{result.seconds:.3f}" if result else "0",
                    "file": report.scenario.path,
                    "line": str(step.line),
                },
            )
            if result is None:
                ET.SubElement(case, "skipped", {"message": "an earlier step failed"})
            elif not result.passed:
                detail = _detail(report, result)
                failure = ET.SubElement(case, "failure", {"message": _clip(printable(detail), 200)})
                failure.text = printable(detail, lines=True)
            elif result.detail:
                ET.SubElement(case, "system-out").text = printable(
                    _detail(report, result), lines=True
                )
    ET.indent(suites)
    Path(path).write_bytes(ET.tostring(suites, encoding="utf-8", xml_declaration=True))
