"""The metric and label names a PromQL expression uses, for checking alerts and dashboards
against what the app exports. A small reader of the expressions this repository writes, not a
full PromQL parser: strings, ranges and Grafana's $variables are dropped first."""

from __future__ import annotations

import re
from dataclasses import dataclass

IDENT = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}
)
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
SELECTOR = re.compile(rf"({IDENT})?\s*\{{([^}}]*)\}}")
MATCHER = re.compile(rf"({IDENT})\s*(?:=~|!~|!=|=)")


@dataclass(frozen=True)
class Uses:
    metrics: frozenset[str]
    selector_labels: dict[str, frozenset[str]]  # metric -> label names its matchers name
    grouping_labels: frozenset[str]  # names in by (...), without (...), on (...)


def uses(expr: str) -> Uses:
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\$\{?\w+\}?", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    grouping: set[str] = set()
    for match in GROUPING.finditer(text):
        grouping.update(n.strip() for n in match.group(2).split(",") if n.strip())
    text = GROUPING.sub(" ", text)
    selector_labels: dict[str, frozenset[str]] = {}
    for match in SELECTOR.finditer(text):
        if match.group(1):
            selector_labels[match.group(1)] = frozenset(MATCHER.findall(match.group(2)))
    text = SELECTOR.sub(lambda m: f" {m.group(1) or ''} ", text)
    metrics = {
        m.group(0)
        for m in re.finditer(rf"(?<![\w.]){IDENT}", text)
        if m.group(0) not in KEYWORDS and not re.match(r"\s*\(", text[m.end() :])
    }
    return Uses(frozenset(metrics), selector_labels, frozenset(grouping))
