"""Read a scenario file and say precisely what is wrong with it: file, line, step and the
nearest valid keyword."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sandbox.auth.guard import TIERS
from sandbox.errors import SandboxError
from sandbox.faults import SURFACES, RuleError, parse_rule
from sandbox.scenario import spec
from sandbox.settings import Settings, SettingsError
from sandbox.vocabulary import OUTCOMES, PROFILES, RESOLUTIONS
from sandbox.world import inbound
from sandbox.world.alarms import STATES, VERDICTS
from sandbox.world.catalog import EVENT_TYPES


class ScenarioError(SandboxError, ValueError):
    """A scenario file that cannot be run, with where and why."""


@dataclass
class Step:
    index: int  # 1-based
    keyword: str
    args: Any
    line: int
    name: str | None = None

    @property
    def label(self) -> str:
        return f"step {self.index}" + (f" ({self.name})" if self.name else f" ({self.keyword})")


@dataclass
class Scenario:
    name: str
    path: str
    steps: list[Step]
    description: str = ""
    seed: int | None = None
    profile: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    world: dict[str, Any] = field(default_factory=dict)


def _hint(word: str, choices: Any) -> str:
    near = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.5)
    return f" (did you mean {near[0]!r}?)" if near else ""


class _Checker:
    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, node: yaml.Node | None, where: str, message: str) -> ScenarioError:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        return ScenarioError(f"{self.path}{line}: {where}{': ' if where else ''}{message}")

    def value(self, node: yaml.Node, kind: str, where: str, name: str) -> Any:
        """Check one field's node against its kind; returns the plain Python value."""
        value = yaml.safe_load(yaml.serialize(node)) if node is not None else None
        problem = _problem(kind, value)
        if problem:
            raise self.fail(node, where, f"{name} {problem}")
        if kind == "duration":
            return spec.duration(value)
        if kind == "method":
            return str(value).upper()
        return value

    def fields(
        self, node: yaml.Node, fields: dict[str, str], where: str, what: str
    ) -> dict[str, Any]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, where, f"{what} takes a mapping of fields")
        names = spec.field_names(fields)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key not in names:
                raise self.fail(
                    key_node,
                    where,
                    f"unknown field {key!r} in {what}"
                    f"{_hint(key, names)}; fields: {', '.join(names)}",
                )
            if key in out:
                raise self.fail(key_node, where, f"field {key!r} is given twice")
            out[key] = self.value(value_node, names[key], where, key)
        for name in spec.required(fields):
            if name not in out:
                raise self.fail(node, where, f"{what} needs {name!r}")
        return out


def _problem(kind: str, value: Any) -> str | None:
    """Why ``value`` is not of ``kind`` (None when it is)."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    is_number = is_int or isinstance(value, float)
    checks: dict[str, tuple[bool, str]] = {
        "str": (isinstance(value, str), "must be text"),
        "int": (is_int, "must be a whole number"),
        "count": (is_int and value >= 1, "must be a whole number of at least 1"),
        "count0": (is_int and value >= 0, "must be a whole number of at least 0"),
        "positive": (is_number and value > 0, "must be a number above 0"),
        "rate": (is_number and 0 <= value <= 1, "must be a number from 0 to 1"),
        "bool": (isinstance(value, bool), "must be true or false"),
        "map": (isinstance(value, dict), "must be a mapping"),
        "any": (True, ""),
        "path": (
            isinstance(value, str) and value.startswith("/"),
            "must be a path like /partner/v1/…",
        ),
        "status": (is_int and 100 <= value <= 599, "must be an HTTP status such as 200"),
        "error_status": (is_int and 400 <= value <= 599, "must be an error status, 400 to 599"),
        "duration": (
            spec.duration(value) is not None,
            "must be a duration such as 30, 250ms, 30s, 5m, 2h or 1d",
        ),
    }
    if kind in checks:
        ok, message = checks[kind]
        return None if ok else f"{message}, not {value!r}"
    choices: dict[str, tuple[str, ...]] = {
        "event_type": EVENT_TYPES,
        "lifecycle": ("alarm",),
        "variant": RESOLUTIONS,
        "method": spec.METHODS,
        "credential": spec.CREDENTIALS,
        "outcome": OUTCOMES,
        "adversarial": spec.ADVERSARIAL,
        "verdict": ("reject", "accept"),
        "profile": PROFILES,
        "alarm_state": STATES,
        "annotation_verdict": VERDICTS,
        "surface": SURFACES,
        "inbound_source": inbound.SOURCES,
        "inbound_type": inbound.EVENT_TYPES,
    }
    if kind == "event_types":
        if not isinstance(value, list) or not value:
            return "must be a list of event types"
        bad = [v for v in value if v not in EVENT_TYPES]
        return None if not bad else f"has unknown event type {bad[0]!r}{_hint(bad[0], EVENT_TYPES)}"
    allowed = choices[kind]
    test = value.upper() if kind == "method" and isinstance(value, str) else value
    if test in allowed:
        return None
    return f"is {value!r}, not one of {', '.join(map(str, allowed))}{_hint(value, allowed)}"


def load(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from None
    return parse(text, str(path))


def parse(text: str, path: str = "<scenario>") -> Scenario:
    check = _Checker(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ScenarioError(
            f"{path}{line}: not valid YAML: {getattr(exc, 'problem', exc)}"
        ) from None
    if not isinstance(root, yaml.MappingNode):
        raise check.fail(root, "", "the top level must be a mapping with name and steps")
    _plain_data(check, root)
    top: dict[str, yaml.Node] = {}
    for key_node, value_node in root.value:
        key = key_node.value
        if key not in spec.TOP_LEVEL:
            raise check.fail(
                key_node,
                "",
                f"unknown top-level key {key!r}"
                f"{_hint(key, spec.TOP_LEVEL)}; keys: {', '.join(spec.TOP_LEVEL)}",
            )
        top[key] = value_node
    for name in spec.REQUIRED_TOP:
        if name not in top:
            raise check.fail(root, "", f"a scenario needs {name!r}")
    values = {
        k: check.value(n, kind, "", k)
        for k, n in top.items()
        if (kind := spec.TOP_LEVEL[k]) != "steps"
    }
    if "settings" in values:
        _allowed_settings(check, top["settings"])
        try:
            Settings.from_mapping(values["settings"], source="settings")
        except SettingsError as exc:
            raise check.fail(top["settings"], "", str(exc)) from None
    return Scenario(
        name=values["name"],
        path=path,
        steps=_steps(check, top["steps"]),
        description=values.get("description", ""),
        seed=values.get("seed"),
        profile=values.get("profile"),
        settings=values.get("settings", {}),
        world=values.get("world", {}),
    )


# the tags PyYAML's safe resolver gives plain scalars, lists and mappings; anything else was
# written on purpose (!!python/object, !!binary, !custom) and has no place in a data file
PLAIN_TAGS = {
    f"tag:yaml.org,2002:{name}"
    for name in ("str", "int", "float", "bool", "null", "timestamp", "map", "seq", "merge")
}
MAX_NODES = 100_000  # with aliases expanded: bounds a "billion laughs" file to milliseconds


def _plain_data(check: _Checker, root: yaml.Node) -> None:
    """Refuse tags beyond plain YAML, and aliases that expand beyond ``MAX_NODES`` nodes."""
    pending, seen = [root], 0
    while pending:
        node = pending.pop()
        seen += 1
        if seen > MAX_NODES:
            raise check.fail(
                node, "", f"the document expands to over {MAX_NODES:,} nodes (aliases?)"
            )
        if node.tag not in PLAIN_TAGS:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise check.fail(
                node, "", f"the YAML tag {tag} is not allowed: a scenario is plain data"
            )
        if isinstance(node, yaml.MappingNode):
            pending += [part for pair in node.value for part in pair]
        elif isinstance(node, yaml.SequenceNode):
            pending += node.value


def _allowed_settings(check: _Checker, node: yaml.Node) -> None:
    """A scenario tunes the simulation; paths, binds, keys and credentials stay with whoever
    runs it (command line, --config)."""
    assert isinstance(node, yaml.MappingNode)  # check.value made sure it is a mapping
    for key_node, _ in node.value:
        key = key_node.value
        if key not in spec.SETTINGS:
            allowed = ", ".join(spec.SETTINGS)
            raise check.fail(
                key_node,
                "settings",
                f"{key!r} cannot be set by a scenario{_hint(key, spec.SETTINGS)}; "
                f"a scenario may set {allowed}",
            )


def _steps(check: _Checker, node: yaml.Node) -> list[Step]:
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise check.fail(node, "", "steps must be a non-empty list")
    steps = []
    for index, step_node in enumerate(node.value, start=1):
        where = f"step {index}"
        if not isinstance(step_node, yaml.MappingNode):
            raise check.fail(
                step_node, where, "each step is a mapping such as '- emit: {type: alarm.created}'"
            )
        keys = {k.value: (k, v) for k, v in step_node.value}
        name = keys.pop("name", (None, None))[1]
        step_name = check.value(name, "str", where, "name") if name is not None else None
        if step_name:
            where = f"step {index} ({step_name})"
        if not keys:
            raise check.fail(step_node, where, f"a step needs one of {', '.join(spec.STEPS)}")
        unknown = [k for k in keys if k not in spec.STEPS]
        if unknown:
            raise check.fail(
                keys[unknown[0]][0],
                where,
                f"unknown step {unknown[0]!r}"
                f"{_hint(unknown[0], spec.STEPS)}; steps: {', '.join(spec.STEPS)}",
            )
        if len(keys) > 1:
            raise check.fail(
                step_node,
                where,
                f"one step does one thing: split {' and '.join(keys)} into separate steps",
            )
        keyword, (key_node, value_node) = next(iter(keys.items()))
        fields = spec.STEPS[keyword]
        if isinstance(fields, str):
            args: Any = check.value(value_node, fields, where, keyword)
        else:
            args = check.fields(value_node, fields, where, keyword)
            _step_rules(check, keyword, args, value_node, where)
        steps.append(Step(index, keyword, args, key_node.start_mark.line + 1, step_name))
    return steps


def _fault_rule(check: _Checker, args: dict[str, Any], node: yaml.Node, where: str) -> None:
    """A fault step sets webhook knobs, adds an inbound rule, or both; the rule is checked
    as the control API checks it, and kept in ``args["inbound"]``."""
    rule = {k: v for k, v in args.items() if k not in spec.KNOBS}
    if not args:
        raise check.fail(node, where, "a fault step needs a webhook knob or an inbound rule")
    if rule:
        try:
            parse_rule(rule, TIERS)
        except RuleError as exc:
            raise check.fail(node, where, f"fault.{exc.field}: {exc}") from None
        for name in rule:
            del args[name]
        args["inbound"] = rule


def _step_rules(
    check: _Checker, keyword: str, args: dict[str, Any], node: yaml.Node, where: str
) -> None:
    """Rules across fields of one step."""
    if keyword == "emit" and ("type" in args) == ("lifecycle" in args):
        raise check.fail(node, where, "emit needs exactly one of 'type' or 'lifecycle'")
    if keyword == "emit" and "variant" in args and "lifecycle" not in args:
        raise check.fail(node, where, "'variant' only goes with 'lifecycle'")
    if keyword == "emit" and "lifecycle" in args and ({"repeat", "rate"} & set(args)):
        raise check.fail(node, where, "'repeat' and 'rate' go with 'type', not 'lifecycle'")
    if keyword == "expect_alarm" and not {"state", "annotated", "verdict"} & set(args):
        raise check.fail(node, where, "expect_alarm needs a 'state', 'annotated' or 'verdict'")
    if keyword == "expect_alarm" and "verdict" in args and args.get("annotated") is False:
        raise check.fail(node, where, "a 'verdict' needs an annotation: drop 'annotated: false'")
    if keyword == "fault":
        _fault_rule(check, args, node, where)
    if keyword == "check":
        for part, value in args.items():
            check_fields = spec.CHECK_FIELDS[part]
            for name, item in value.items():
                if name not in check_fields:
                    raise check.fail(
                        node,
                        where,
                        f"unknown field {name!r} in check.{part}{_hint(name, check_fields)}",
                    )
                problem = _problem(check_fields[name], item)
                if problem:
                    raise check.fail(node, where, f"check.{part}.{name} {problem}")
    if keyword == "adversarial" and "side_effect" in args:
        for name, item in args["side_effect"].items():
            if name not in spec.SIDE_EFFECT_FIELDS:
                raise check.fail(
                    node,
                    where,
                    f"unknown field {name!r} in side_effect{_hint(name, spec.SIDE_EFFECT_FIELDS)}",
                )
            problem = _problem(spec.SIDE_EFFECT_FIELDS[name], item)
            if problem:
                raise check.fail(node, where, f"side_effect.{name} {problem}")
        if "within" in args["side_effect"]:
            args["side_effect"]["within"] = spec.duration(args["side_effect"]["within"])
        if "method" in args["side_effect"]:
            args["side_effect"]["method"] = args["side_effect"]["method"].upper()
