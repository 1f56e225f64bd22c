"""A small PromQL parser: enough structure to reason about SLI expressions.

It builds a syntax tree for the PromQL grammar (selectors, matchers, range and subquery
brackets, ``offset``/``@``, function calls, aggregations with ``by``/``without`` before or
after the arguments, binary operators with ``bool``, ``on``/``ignoring`` and
``group_left``/``group_right``) so that checks can ask real questions — "is this rate
summed by service?" — instead of matching text. It is not the judge of validity: that
is ``promtool``. Any input that does not parse raises :class:`PromQLError`, and only that.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field

#: Deepest nesting accepted; deeper input is rejected rather than exhausting the stack
#: (in the parser, and in every recursive walk of the tree afterwards).
MAX_DEPTH = 100

AGGREGATORS = frozenset(
    {
        "sum", "avg", "count", "min", "max", "group", "stddev", "stdvar", "topk",
        "bottomk", "count_values", "quantile", "limitk", "limit_ratio",
    }
)
#: Aggregators whose first argument is a parameter (k, φ, label name, ratio).
PARAM_AGGREGATORS = frozenset(
    {"topk", "bottomk", "count_values", "quantile", "limitk", "limit_ratio"}
)
COMPARISONS = frozenset({"==", "!=", ">", "<", ">=", "<="})
SET_OPERATORS = frozenset({"and", "or", "unless"})
_PRECEDENCE = {
    "or": 1,
    "and": 2, "unless": 2,
    "==": 3, "!=": 3, ">": 3, "<": 3, ">=": 3, "<=": 3,
    "+": 4, "-": 4,
    "*": 5, "/": 5, "%": 5, "atan2": 5,
    "^": 6,
}
_DURATION = re.compile(
    r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?"
)
_DURATION_UNITS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<duration>(?:\d+(?:ms|[smhdwy]))+)(?![\w.])
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`[^`]*`)
  | (?P<op>==|!=|>=|<=|=~|!~|[-+*/%^=<>(){}\[\],:@])
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v",
            "\\": "\\", '"': '"', "'": "'"}


class PromQLError(ValueError):
    """The text is not an expression this parser understands."""


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration (``5m``, ``1h30m``, ``3d``, ``500ms``)."""
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise PromQLError(f"not a duration: {text!r}")
    return sum(int(n) * unit for n, unit in zip(match.groups(), _DURATION_UNITS, strict=True)
               if n)


def format_duration(seconds: float) -> str:
    """The shortest Prometheus spelling of ``seconds`` (``3600`` → ``1h``)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class Matcher:
    """A label matcher of a selector: ``name op "value"``."""

    name: str
    op: str
    value: str

    def matches(self, value: str) -> bool:
        """Whether a series whose label has ``value`` ("" when absent) is selected.

        Prometheus regexes are fully anchored RE2; Python's ``re`` agrees on the syntax
        SLI filters use. A pattern Python cannot compile selects nothing here.
        """
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        try:
            hit = re.fullmatch(self.value, value, re.DOTALL) is not None
        except re.error:
            return False
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'


@dataclass(frozen=True)
class Node:
    """Base of the syntax tree."""


@dataclass(frozen=True)
class Number(Node):
    value: float


@dataclass(frozen=True)
class String(Node):
    value: str


@dataclass(frozen=True)
class Selector(Node):
    """``metric{matchers}``, with ``range`` (seconds) when it is a range vector."""

    metric: str | None
    matchers: tuple[Matcher, ...] = ()
    range: float | None = None


@dataclass(frozen=True)
class Subquery(Node):
    expr: Node
    range: float
    step: float | None = None


@dataclass(frozen=True)
class Call(Node):
    func: str
    args: tuple[Node, ...] = ()


@dataclass(frozen=True)
class Aggregate(Node):
    """``op [by|without (grouping)] ([param,] expr)``; ``grouping is None`` when absent."""

    op: str
    expr: Node
    param: Node | None = None
    grouping: tuple[str, ...] | None = None
    without: bool = False


@dataclass(frozen=True)
class VectorMatching:
    on: bool = False
    labels: tuple[str, ...] = ()
    group: str | None = None  # "left" | "right" for many-to-one
    include: tuple[str, ...] = ()


@dataclass(frozen=True)
class Binary(Node):
    op: str
    lhs: Node
    rhs: Node
    bool: bool = False
    matching: VectorMatching | None = None


@dataclass(frozen=True)
class Unary(Node):
    op: str
    expr: Node


@dataclass(frozen=True)
class Paren(Node):
    expr: Node


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    pos: int


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise PromQLError(f"unexpected character {text[pos]!r} at {pos}")
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(_Token(kind, match.group(), pos))
        pos = match.end()
    return tokens


def _unquote(token: _Token) -> str:
    raw = token.text[1:-1]
    if token.text[0] == "`":
        return raw
    out: list[str] = []
    chars = iter(raw)
    for char in chars:
        if char != "\\":
            out.append(char)
            continue
        escaped = next(chars, "")
        if escaped not in _ESCAPES:
            raise PromQLError(f"unknown escape sequence \\{escaped} at {token.pos}")
        out.append(_ESCAPES[escaped])
    return "".join(out)


@dataclass
class _Parser:
    tokens: list[_Token]
    i: int = 0
    depth: int = field(default=0)

    def peek(self, ahead: int = 0) -> _Token | None:
        j = self.i + ahead
        return self.tokens[j] if j < len(self.tokens) else None

    def at(self, *texts: str) -> bool:
        token = self.peek()
        return token is not None and token.kind in ("op", "ident") and (
            token.text in texts or token.text.lower() in texts
        )

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise PromQLError("unexpected end of expression")
        self.i += 1
        return token

    def expect(self, text: str) -> _Token:
        token = self.take()
        if token.text != text:
            raise PromQLError(f"expected {text!r} at {token.pos}, found {token.text!r}")
        return token

    def expr(self, min_prec: int = 1) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise PromQLError(f"expression nested deeper than {MAX_DEPTH}")
        try:
            lhs = self.unary()
            while True:
                token = self.peek()
                op = token.text.lower() if token and token.kind in ("op", "ident") else ""
                prec = _PRECEDENCE.get(op)
                if prec is None or prec < min_prec:
                    return lhs
                self.take()
                is_bool = self.at("bool")
                if is_bool:
                    self.take()
                    if op not in COMPARISONS:
                        raise PromQLError(f"bool modifier on non-comparison operator {op!r}")
                matching = self.vector_matching()
                rhs = self.expr(prec if op == "^" else prec + 1)
                lhs = Binary(op, lhs, rhs, is_bool, matching)
        finally:
            self.depth -= 1

    def vector_matching(self) -> VectorMatching | None:
        if not self.at("on", "ignoring"):
            return None
        on = self.take().text.lower() == "on"
        labels = self.label_list()
        group = None
        include: tuple[str, ...] = ()
        if self.at("group_left", "group_right"):
            group = self.take().text.lower().removeprefix("group_")
            if self.at("("):
                include = self.label_list()
        return VectorMatching(on, labels, group, include)

    def unary(self) -> Node:
        if self.at("-", "+"):
            op = self.take().text
            return Unary(op, self.expr(_PRECEDENCE["^"]))
        return self.postfix(self.primary())

    def postfix(self, node: Node) -> Node:
        while True:
            if self.at("["):
                node = self.bracket(node)
            elif self.at("offset"):
                self.take()
                if self.at("-", "+"):
                    self.take()
                self.duration()
            elif self.at("@"):
                self.take()
                if self.at("start", "end"):
                    self.take()
                    self.expect("(")
                    self.expect(")")
                else:
                    if self.at("-", "+"):
                        self.take()
                    self.number()
            else:
                return node

    def bracket(self, node: Node) -> Node:
        self.expect("[")
        window = self.duration()
        token = self.peek()
        if token is not None and token.text.startswith(":"):
            # The lexer reads ``:1m`` as an identifier (metric names may hold colons).
            self.take()
            step_text = token.text[1:]
            step = parse_duration(step_text) if step_text else None
            if step is None and not self.at("]"):
                step = self.duration()
            self.expect("]")
            return Subquery(node, window, step)
        self.expect("]")
        if not isinstance(node, Selector) or node.range is not None:
            raise PromQLError("range brackets need an instant vector selector")
        return Selector(node.metric, node.matchers, window)

    def duration(self) -> float:
        token = self.take()
        if token.kind == "duration":
            return parse_duration(token.text)
        if token.kind == "number":
            return self.number_value(token)
        raise PromQLError(f"expected a duration at {token.pos}, found {token.text!r}")

    def number(self) -> float:
        return self.number_value(self.take())

    @staticmethod
    def number_value(token: _Token) -> float:
        text = token.text.replace("_", "")
        if token.kind == "ident" and text.lower() in ("inf", "nan"):
            return float(text)
        if token.kind != "number":
            raise PromQLError(f"expected a number at {token.pos}, found {token.text!r}")
        try:
            return float(int(text, 16)) if text[:2].lower() == "0x" else float(text)
        except ValueError:
            raise PromQLError(f"bad number {token.text!r} at {token.pos}") from None

    def primary(self) -> Node:
        token = self.peek()
        if token is None:
            raise PromQLError("unexpected end of expression")
        if token.kind == "number" or (
            token.kind == "ident" and token.text.lower() in ("inf", "nan")
        ):
            return Number(self.number_value(self.take()))
        if token.kind == "duration":
            return Number(parse_duration(self.take().text))
        if token.kind == "string":
            return String(_unquote(self.take()))
        if self.at("("):
            self.take()
            inner = self.expr()
            self.expect(")")
            return Paren(inner)
        if self.at("{"):
            return self.selector(None)
        if token.kind != "ident":
            raise PromQLError(f"unexpected {token.text!r} at {token.pos}")
        name = self.take().text
        nxt = self.peek()
        if name.lower() in AGGREGATORS and nxt is not None and nxt.text.lower() in (
            "(", "by", "without"
        ):
            return self.aggregate(name.lower())
        if nxt is not None and nxt.text == "(":
            return Call(name, self.call_args())
        return self.selector(name)

    def call_args(self) -> tuple[Node, ...]:
        self.expect("(")
        args: list[Node] = []
        while not self.at(")"):
            args.append(self.expr())
            if not self.at(")"):
                self.expect(",")
        self.expect(")")
        return tuple(args)

    def aggregate(self, op: str) -> Node:
        grouping: tuple[str, ...] | None = None
        without = False
        if self.at("by", "without"):
            without = self.take().text.lower() == "without"
            grouping = self.label_list()
        args = self.call_args()
        if self.at("by", "without"):
            if grouping is not None:
                raise PromQLError(f"{op}: grouping given twice")
            without = self.take().text.lower() == "without"
            grouping = self.label_list()
        wanted = 2 if op in PARAM_AGGREGATORS else 1
        if len(args) != wanted:
            raise PromQLError(f"{op} expects {wanted} argument(s), got {len(args)}")
        param = args[0] if wanted == 2 else None
        return Aggregate(op, args[-1], param, grouping, without)

    def label_name(self) -> str:
        token = self.take()
        if token.kind == "ident" and ":" not in token.text:
            return token.text
        if token.kind == "string":
            return _unquote(token)
        raise PromQLError(f"expected a label name at {token.pos}, found {token.text!r}")

    def label_list(self) -> tuple[str, ...]:
        self.expect("(")
        labels: list[str] = []
        while not self.at(")"):
            labels.append(self.label_name())
            if not self.at(")"):
                self.expect(",")
        self.expect(")")
        return tuple(labels)

    def selector(self, metric: str | None) -> Selector:
        matchers: list[Matcher] = []
        if self.at("{"):
            self.take()
            while not self.at("}"):
                here, nxt = self.peek(), self.peek(1)
                if here is not None and here.kind == "string" and (
                    nxt is None or nxt.text in (",", "}")
                ):
                    if metric is not None:
                        raise PromQLError("metric name given twice")
                    metric = _unquote(self.take())
                else:
                    name = self.label_name()
                    op = self.take()
                    if op.text not in ("=", "!=", "=~", "!~"):
                        raise PromQLError(f"expected a matcher operator at {op.pos}")
                    value = self.take()
                    if value.kind != "string":
                        raise PromQLError(f"expected a quoted value at {value.pos}")
                    matchers.append(Matcher(name, op.text, _unquote(value)))
                if not self.at("}"):
                    self.expect(",")
            self.expect("}")
        for matcher in matchers:
            if matcher.name == "__name__" and matcher.op == "=":
                metric = metric or matcher.value
        if metric is None and not matchers:
            raise PromQLError("a selector needs a metric name or a matcher")
        rest = tuple(m for m in matchers if not (m.name == "__name__" and m.op == "="))
        return Selector(metric, rest)


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> Node:
    """The syntax tree of ``text``; :class:`PromQLError` when it is not PromQL.

    Cached: a cluster's PrometheusRules repeat the same few expressions thousands of times
    and several checks parse each; the tree is immutable (frozen nodes, tuples), and a
    :class:`PromQLError` is not cached but raised again by a fresh parse."""
    parser = _Parser(_tokens(text))
    if parser.peek() is None:
        raise PromQLError("empty expression")
    node = parser.expr()
    token = parser.peek()
    if token is not None:
        raise PromQLError(f"unexpected {token.text!r} at {token.pos}")
    if _height(node) > MAX_DEPTH:
        raise PromQLError(f"expression nested deeper than {MAX_DEPTH}")
    return node


def children(node: Node) -> tuple[Node, ...]:
    """The direct sub-expressions of ``node``."""
    if isinstance(node, (Paren, Unary, Subquery)):
        return (node.expr,)
    if isinstance(node, Call):
        return node.args
    if isinstance(node, Aggregate):
        return (node.expr,) if node.param is None else (node.param, node.expr)
    if isinstance(node, Binary):
        return (node.lhs, node.rhs)
    return ()


def _height(root: Node) -> int:
    """Height of the tree, computed without recursion (a long ``a+b+c…`` chain is deep)."""
    height = 0
    stack = [(root, 1)]
    while stack:
        node, level = stack.pop()
        height = max(height, level)
        stack.extend((child, level + 1) for child in children(node))
    return height


def walk(node: Node) -> list[Node]:
    """Every node of the tree, ``node`` first."""
    found = [node]
    for child in children(node):
        found.extend(walk(child))
    return found


def strip_parens(node: Node) -> Node:
    while isinstance(node, Paren):
        node = node.expr
    return node


def constant(node: Node) -> float | None:
    """The value of a constant scalar expression (``14.4 * (1 - 0.999)``), else None."""
    node = strip_parens(node)
    if isinstance(node, Number):
        return node.value
    if isinstance(node, Unary):
        value = constant(node.expr)
        return None if value is None else (-value if node.op == "-" else value)
    if isinstance(node, Call) and node.func == "scalar" and len(node.args) == 1:
        return constant(node.args[0])
    if isinstance(node, Binary) and node.op in ("+", "-", "*", "/", "^"):
        lhs, rhs = constant(node.lhs), constant(node.rhs)
        if lhs is None or rhs is None:
            return None
        try:
            result = {
                "+": lambda: lhs + rhs,
                "-": lambda: lhs - rhs,
                "*": lambda: lhs * rhs,
                "/": lambda: lhs / rhs if rhs else math.copysign(math.inf, lhs) * (lhs != 0),
                "^": lambda: lhs**rhs,
            }[node.op]()
        except (OverflowError, ZeroDivisionError):
            return None
        return float(result) if isinstance(result, (int, float)) else None
    return None
