"""The metric names a PromQL expression reads, for tests that hold a dashboard's or a rule
file's queries against what the daemon serves.

A small tokenizer, not a parser: ``promtool`` (Debian's ``prometheus`` package) proves the
expressions parse; this only has to find the names in expressions that do. It drops what can
hold a word that is not a metric (strings, label matchers, ranges, ``by (...)``-style label
lists, Grafana's ``$variables``), then keeps each identifier that is not a function call, a
keyword or an operator.
"""

from __future__ import annotations

import re

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_VARIABLE = re.compile(r"\$\{?\w+\}?")
_IDENTIFIER = re.compile(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?")
# PromQL's words that look like identifiers: binary operators, modifiers, aggregation clauses.
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
     "group_right", "atan2", "inf", "nan"}
)  # fmt: skip


def metric_names(expression: str) -> set[str]:
    """The metric names ``expression`` selects: ``rate(x_total{a="b"}[5m]) / y`` → {x_total, y}."""
    text = _STRING.sub(" ", expression)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    text = _VARIABLE.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        word, call = match.group(1), match.group(2)
        if call is None and word.lower() not in _KEYWORDS:
            names.add(word)
    return names
