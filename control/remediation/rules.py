"""Remediation rules: which alert queues which whitelisted action, read from the commands file.

```toml
[remediation.restart_failed_unit]
alertname = "SystemdServiceFailed"          # required: the alert's alertname
action_type = "restart_service"             # required: a whitelisted action type
parameters = { service_name = "{labels.name}" }   # one template per parameter of that type
match = { severity = "warning" }            # optional: further labels that must be equal
```

A parameter template is literal text with `{labels.NAME}` placeholders, filled from the alert's
labels. The rendered values then go through the whitelist's patterns like any other action's,
so a label can never smuggle shell syntax in. Rules are checked once at start-up: an unknown
action type, a parameter the type does not have (or lacks), or a malformed template stops
control with one line. The first rule (in file order) that matches an alert wins.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from control.errors import ConfigError
from control.remediation.whitelist import Whitelist

KNOWN_RULE_KEYS = frozenset({"alertname", "action_type", "parameters", "match", "description"})
_RULE_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}", re.ASCII)
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_TEMPLATE_TOKEN = re.compile(r"\{labels\.([A-Za-z_][A-Za-z0-9_]*)\}|[{}]", re.ASCII)


class RuleNotApplicable(ValueError):
    """The alert matched a rule but lacks a label the rule's parameters need."""


@dataclass(frozen=True)
class LabelRef:
    """A `{labels.NAME}` placeholder in a parameter template."""

    name: str


@dataclass(frozen=True)
class RemediationRule:
    """One alert → action mapping."""

    name: str
    alertname: str
    action_type: str
    parameters: Mapping[str, tuple[str | LabelRef, ...]]
    match: Mapping[str, str]

    def matches(self, alertname: str, labels: Mapping[str, str]) -> bool:
        """Whether an alert with this name and these labels triggers the rule."""
        return alertname == self.alertname and all(
            labels.get(key) == value for key, value in self.match.items()
        )

    def render(self, labels: Mapping[str, str]) -> dict[str, str]:
        """The action parameters for an alert's labels; RuleNotApplicable if one is missing."""
        rendered = {}
        for key, template in self.parameters.items():
            parts = []
            for segment in template:
                if isinstance(segment, LabelRef):
                    if segment.name not in labels:
                        raise RuleNotApplicable(f"the alert has no label {segment.name!r}")
                    parts.append(labels[segment.name])
                else:
                    parts.append(segment)
            rendered[key] = "".join(parts)
        return rendered


class RemediationRules:
    """Every configured rule, in file order."""

    def __init__(self, rules: list[RemediationRule] | None = None) -> None:
        self.rules = list(rules or [])

    def __len__(self) -> int:
        return len(self.rules)

    def find(self, alertname: str, labels: Mapping[str, str]) -> RemediationRule | None:
        """The first rule matching the alert, or None."""
        return next((rule for rule in self.rules if rule.matches(alertname, labels)), None)


def load_rules(whitelist: Whitelist, path: str | None = None) -> RemediationRules:
    """Parse the `[remediation.*]` tables the whitelist's file holds; ConfigError on a problem."""
    try:
        return parse_rules(whitelist.raw.get("remediation", {}), whitelist)
    except ConfigError as exc:
        raise ConfigError(f"commands file {path}: {exc}" if path else str(exc)) from None


def parse_rules(section: Any, whitelist: Whitelist) -> RemediationRules:
    """Validate a parsed `[remediation]` section against the whitelist."""
    if not isinstance(section, Mapping):
        raise ConfigError("[remediation] must be a table of named rules")
    return RemediationRules([_parse_rule(name, spec, whitelist) for name, spec in section.items()])


def _parse_rule(name: str, spec: Any, whitelist: Whitelist) -> RemediationRule:
    where = f"[remediation.{name}]"
    if not _RULE_NAME.fullmatch(name):
        raise ConfigError(f"{where}: rule name must match ^[a-z][a-z0-9_]{{0,63}}$")
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where} must be a table with alertname, action_type and parameters")
    for key in sorted(spec.keys() - KNOWN_RULE_KEYS):
        raise ConfigError(f"{where}: unknown key {key!r}")
    for key in ("alertname", "action_type"):
        if not isinstance(spec.get(key), str) or not spec[key]:
            raise ConfigError(f"{where}: {key} must be a non-empty string")
    command_type = whitelist.types.get(spec["action_type"])
    if command_type is None:
        raise ConfigError(f"{where}: action_type {spec['action_type']!r} is not in the whitelist")
    parameters = spec.get("parameters", {})
    if not isinstance(parameters, Mapping):
        raise ConfigError(f"{where}.parameters must be a table of name = template")
    for missing in sorted(command_type.patterns.keys() - parameters.keys()):
        raise ConfigError(f"{where}.parameters: {missing} is required by {command_type.name}")
    for extra in sorted(parameters.keys() - command_type.patterns.keys()):
        raise ConfigError(f"{where}.parameters: {command_type.name} has no parameter {extra}")
    templates = {}
    for key, text in parameters.items():
        templates[key] = _parse_template(f"{where}.parameters.{key}", text)
        if all(isinstance(segment, str) for segment in templates[key]):
            problem = command_type.check(key, text)  # a constant can be checked right now
            if problem:
                raise ConfigError(f"{where}.parameters.{key}: {problem}")
    match = spec.get("match", {})
    if not isinstance(match, Mapping) or not all(
        isinstance(key, str) and _LABEL_NAME.fullmatch(key) and isinstance(value, str)
        for key, value in match.items()
    ):
        raise ConfigError(f'{where}.match must be a table of label = "value"')
    if not isinstance(spec.get("description", ""), str):
        raise ConfigError(f"{where}: description must be a string")
    return RemediationRule(name, spec["alertname"], command_type.name, templates, dict(match))


def _parse_template(where: str, text: Any) -> tuple[str | LabelRef, ...]:
    if not isinstance(text, str) or not text:
        raise ConfigError(f"{where}: must be a non-empty string")
    segments: list[str | LabelRef] = []
    pos = 0
    for found in _TEMPLATE_TOKEN.finditer(text):
        if not found.group(1):
            raise ConfigError(
                f"{where}: stray {found.group(0)!r} (placeholders are {{labels.NAME}})"
            )
        if found.start() > pos:
            segments.append(text[pos : found.start()])
        segments.append(LabelRef(found.group(1)))
        pos = found.end()
    if pos < len(text):
        segments.append(text[pos:])
    return tuple(segments)
