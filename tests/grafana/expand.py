"""Turn a dashboard query into the SQL ClickHouse receives, as Grafana and the ClickHouse
plugin do, so tests can run panels against the embedded engine.

Three passes, in the plugin's order:

1. ``$__conditionalAll(cond, $var)`` (plugin frontend, ``applyConditionalAll``): innermost
   last, arguments split at top-level commas counting parentheses only; replaced by ``1=1``
   when the variable's value is ``$__all`` or empty, else by ``cond``.
2. Template variables (Grafana's template service with the plugin's format function):
   ``$var``, ``${var}``, ``${var:format}``, ``[[var]]``. Without a format an array becomes
   ``'a','b'`` and a single value is inserted raw; "All" stands for every option's value.
   ``percentencode`` is JavaScript's ``encodeURIComponent`` with ``!'()*`` encoded too
   (Grafana's ``encodeURIComponentStrict``), an array as ``{a,b}``: all but ASCII letters,
   digits and ``-_.~`` become ``%XX`` of their UTF-8 bytes.
   Unknown names (``$__timeFilter``, ``$__interval_s``...) are left for the backend.
3. Backend macros (grafana/sqlds ``interpolate`` with the plugin's ``pkg/macros``): each
   ``$__name`` matched by ``\\$__name\\b(?:\\((.*?)\\))?`` -- a lazy match, so arguments must
   not contain parentheses -- and arguments split at commas.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

ALL = "$__all"

Value = str | Sequence[str]


@dataclass(frozen=True)
class Variable:
    """A variable's current value; ``options`` are the values "All" stands for."""

    value: Value
    options: tuple[str, ...] = ()

    def resolved(self) -> Value:
        return list(self.options) if self.value == ALL else self.value

    def is_all_or_empty(self) -> bool:
        value = ",".join(self.value) if isinstance(self.value, (list, tuple)) else self.value
        return value in ("", ALL)


@dataclass(frozen=True)
class TimeRange:
    """The dashboard's time picker in Unix milliseconds, and the panel interval."""

    from_ms: int
    to_ms: int
    interval_ms: int


class ExpansionError(ValueError):
    """The query uses a macro or argument the plugin would not expand as written."""


# ---------------------------------------------------------------- 1. conditionalAll

_CONDITIONAL_ALL = "$__conditionalAll("
_VARIABLE_NAME = re.compile(r"(?<=\$\{)\w+(?=\})|(?<=\$)\w+")


def _macro_args(sql: str, open_paren: int) -> list[str]:
    args, depth, start = [], 0, open_paren + 1
    for match in re.finditer(r"[(),]", sql[open_paren:]):
        token, at = match.group(), open_paren + match.start()
        depth += {"(": 1, ")": -1}.get(token, 0)
        if token == "," and depth == 1:
            args.append(sql[start:at])
            start = at + 1
        if depth == 0:
            args.append(sql[start:at])
            return args
    return []


def apply_conditional_all(sql: str, variables: Mapping[str, Variable]) -> str:
    at = sql.rfind(_CONDITIONAL_ALL)
    while at != -1:
        args = _macro_args(sql, at + len(_CONDITIONAL_ALL) - 1)
        if len(args) != 2:
            raise ExpansionError(f"$__conditionalAll needs 2 arguments: {sql[at:at + 80]!r}")
        condition, variable_ref = args
        name = _VARIABLE_NAME.search(variable_ref.strip())
        phrase = condition
        if name and name.group() in variables and variables[name.group()].is_all_or_empty():
            phrase = "1=1"
        elif not name:
            raise ExpansionError(f"$__conditionalAll second argument is no variable: {variable_ref!r}")
        sql = sql.replace(f"{_CONDITIONAL_ALL}{condition},{variable_ref})", phrase)
        at = sql.rfind(_CONDITIONAL_ALL)
    return sql


# -------------------------------------------------------------- 2. template variables

_TEMPLATE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}"
)


def _each(value: Value) -> list[str]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


_FORMATS: dict[str, Callable[[str, Value], str]] = {
    "singlequote": lambda _, v: ",".join("'" + s.replace("'", "\\'") + "'" for s in _each(v)),
    "sqlstring": lambda _, v: ",".join("'" + s.replace("'", "''") + "'" for s in _each(v)),
    "raw": lambda _, v: ",".join(_each(v)),
    "csv": lambda _, v: ",".join(_each(v)),
    "queryparam": lambda name, v: "&".join(f"var-{name}={s}" for s in _each(v)),
    "percentencode": lambda _, v: quote(v if isinstance(v, str) else "{" + ",".join(v) + "}", safe=""),
}


def _plugin_format(value: Value) -> str:
    if isinstance(value, (list, tuple)):
        return "'" + "','".join(value) + "'"
    return value


def replace_variables(sql: str, variables: Mapping[str, Variable]) -> str:
    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        fmt = match.group(3) or match.group(6)
        if name not in variables:
            return match.group(0)
        value = variables[name].resolved()
        if fmt is None:
            return _plugin_format(value)
        if fmt not in _FORMATS:
            raise ExpansionError(f"format {fmt!r} of ${{{name}}} is not modelled here")
        return _FORMATS[fmt](name, value)

    return _TEMPLATE.sub(substitute, sql)


# ------------------------------------------------------------------ 3. backend macros


def _seconds(ms: int) -> int:
    return ms // 1000


def _one_arg(name: str, args: list[str]) -> str:
    if len(args) != 1 or not args[0]:
        raise ExpansionError(f"$__{name} takes one argument, got {args}")
    return args[0]


def _between(column: str, low: str, high: str) -> str:
    return f"{column} >= {low} AND {column} <= {high}"


def _date(ms: int) -> str:
    day = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC).date().isoformat()
    return f"toDate('{day}')"


_MACROS: dict[str, Callable[[TimeRange, list[str]], str]] = {
    "fromTime": lambda t, _: f"toDateTime({_seconds(t.from_ms)})",
    "toTime": lambda t, _: f"toDateTime({_seconds(t.to_ms)})",
    "fromTime_ms": lambda t, _: f"fromUnixTimestamp64Milli({t.from_ms})",
    "toTime_ms": lambda t, _: f"fromUnixTimestamp64Milli({t.to_ms})",
    "timeFilter": lambda t, a: _between(
        _one_arg("timeFilter", a), f"toDateTime({_seconds(t.from_ms)})", f"toDateTime({_seconds(t.to_ms)})"
    ),
    "timeFilter_ms": lambda t, a: _between(
        _one_arg("timeFilter_ms", a),
        f"fromUnixTimestamp64Milli({t.from_ms})",
        f"fromUnixTimestamp64Milli({t.to_ms})",
    ),
    "dateFilter": lambda t, a: _between(_one_arg("dateFilter", a), _date(t.from_ms), _date(t.to_ms)),
    "timeInterval": lambda t, a: (
        f"toStartOfInterval(toDateTime({_one_arg('timeInterval', a)}), "
        f"INTERVAL {max(t.interval_ms // 1000, 1)} second)"
    ),
    "timeInterval_ms": lambda t, a: (
        f"toStartOfInterval(toDateTime64({_one_arg('timeInterval_ms', a)}, 3), "
        f"INTERVAL {max(t.interval_ms, 1)} millisecond)"
    ),
    "interval_s": lambda t, _: str(max(t.interval_ms // 1000, 1)),
}


def interpolate_macros(sql: str, time_range: TimeRange) -> str:
    for name, expand in _MACROS.items():
        for match in re.finditer(rf"\$__{name}\b(?:\((.*?)\))?", sql):
            raw_args = match.group(1)
            if raw_args is not None and "(" in raw_args:
                raise ExpansionError(f"$__{name} argument with parentheses: {match.group(0)!r}")
            args = [a.strip() for a in raw_args.split(",")] if raw_args is not None else [""]
            sql = sql.replace(match.group(0), expand(time_range, args))
    if "$" in sql:
        raise ExpansionError(f"unexpanded $ left in query: {sql[sql.index('$'):][:60]!r}")
    return sql


def expand(sql: str, variables: Mapping[str, Variable], time_range: TimeRange) -> str:
    """The SQL as ClickHouse would receive it from Grafana."""
    sql = apply_conditional_all(sql, variables)
    sql = replace_variables(sql, variables)
    return interpolate_macros(sql, time_range)
