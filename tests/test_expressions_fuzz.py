"""Property tests of the expression language (hypothesis): on any text the
parser raises only ExpressionError; on any expression the grammar makes and
any JSON contexts the evaluator raises only EvaluationError and returns JSON;
fromJSON(toJSON(x)) gives x back; and GitHub's comparison laws hold.

Bounded: a fixed number of examples each, no deadline (a busy machine is
slow, not wrong), no example database written to the tree."""

from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.expressions import (
    EvaluationError,
    ExpressionError,
    Status,
    evaluate,
    parse,
    parse_template,
    render,
    to_string,
    truthy,
)
from server.expressions.values import parse_number
from tests.test_expressions import same

BOUNDED = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

# ---- values --------------------------------------------------------------------------

KEYS = st.sampled_from(["a", "b", "A", "name", "0", "1", "", "x y", "é"]) | st.text(max_size=4)
NUMBERS = st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
NUMERIC_TEXT = st.sampled_from(["", " ", "0", "-0", "1", " 1.0 ", "0x1f", "0o7", "1e3", ".5", "abc",
                                "NaN", "Infinity", "-Infinity", "true", "null"])
SCALARS = st.none() | st.booleans() | NUMBERS | st.text(max_size=8) | NUMERIC_TEXT
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)
CONTEXT_NAMES = ["a", "b", "x", "needs", "matrix", "arr", "obj"]
CONTEXTS = st.dictionaries(st.sampled_from(CONTEXT_NAMES), JSON, max_size=5)
STATUS = st.none() | st.builds(Status, st.booleans(), st.booleans(), st.booleans())


def is_json(value) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, list):
        return type(value) is list and all(is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_json(v) for k, v in value.items())
    return False


# ---- expressions from the grammar ----------------------------------------------------

def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


STRING_LITERALS = (st.text(max_size=6) | NUMERIC_TEXT | st.sampled_from(["{0}", "{{", "}}", "{1}", "[1,2]", '{"a":1}'])
                   ).map(_quoted)
NUMBER_LITERALS = st.sampled_from(["0", "1", "-1", "+2", ".5", "-.5", "1e3", "1E-2", "0xff", "0o17", "NaN",
                                   "Infinity", "-Infinity", "-0", "3.14"]) | st.integers(-99, 99).map(str)
KEYWORDS = st.sampled_from(["true", "false", "null"])
PROPERTIES = st.sampled_from(["a", "b", "name", "x", "outputs", "true", "null", "format", "b-c", "_"])
REFERENCES = st.builds(lambda name, path: name + "".join(path),
                       st.sampled_from(CONTEXT_NAMES + ["Needs", "nosuch"]),
                       st.lists(PROPERTIES.map(lambda p: "." + p) | st.just(".*") | st.just("[*]")
                                | st.sampled_from(["[0]", "[1]", "['a']", "[true]", "[null]"]), max_size=3))
ATOMS = STRING_LITERALS | NUMBER_LITERALS | KEYWORDS | REFERENCES
BINARY = ["==", "!=", "<", "<=", ">", ">=", "&&", "||"]


def _compound(inner):
    one, two, three = inner, st.tuples(inner, inner), st.tuples(inner, inner, inner)
    return st.one_of(
        one.map(lambda e: f"!{e}"),
        one.map(lambda e: f"({e})"),
        st.builds(lambda ab, op: f"{ab[0]} {op} {ab[1]}", two, st.sampled_from(BINARY)),
        st.builds(lambda e, p: f"({e}).{p}", inner, PROPERTIES),
        st.builds(lambda e, k: f"({e})[{k}]", inner, inner),
        one.map(lambda e: f"({e}).*"),
        st.builds(lambda ab, f: f"{f}({ab[0]}, {ab[1]})", two, st.sampled_from(["contains", "startsWith", "endsWith"])),
        st.builds(lambda f, args: f"format({f}{''.join(', ' + a for a in args)})",
                  STRING_LITERALS | inner, st.lists(inner, max_size=3)),
        one.map(lambda e: f"join({e})"),
        two.map(lambda ab: f"join({ab[0]}, {ab[1]})"),
        one.map(lambda e: f"toJSON({e})"),
        one.map(lambda e: f"fromJSON({e})"),
        one.map(lambda e: f"fromJSON(toJSON({e}))"),
        three.map(lambda abc: f"case({abc[0]}, {abc[1]}, {abc[2]})"),
        st.sampled_from(["success()", "failure()", "cancelled()", "always()"]),
    )


EXPRESSIONS = st.recursive(ATOMS, _compound, max_leaves=10)


@BOUNDED
@given(EXPRESSIONS, CONTEXTS, STATUS)
def test_evaluation_raises_only_evaluation_error_and_returns_json(text, contexts, status):
    try:
        expr = parse(text)
    except ExpressionError as err:  # the grammar makes valid text; only its depth can be too much
        assert "nested deeper" in err.message, (text, err.message)
        return
    try:
        value = evaluate(expr, contexts, status)
    except EvaluationError:
        return
    assert is_json(value), (text, value)
    assert isinstance(truthy(value), bool)
    assert isinstance(to_string(value), str)


# ---- any text --------------------------------------------------------------------------

SYMBOLS = st.text(alphabet="()[],.*!<>=&|'\"+-0123456789.eExabc_ \n\t{}$@😊", max_size=40)


@BOUNDED
@given(st.text(max_size=60) | SYMBOLS)
def test_parse_raises_only_expression_error(text):
    try:
        expr = parse(text)
    except ExpressionError as err:
        assert 0 <= err.offset <= len(text), (text, err.offset)
        return
    assert all(0 <= node.offset < len(text) for node in expr.walk())


TEMPLATE_PIECES = st.sampled_from(["${{", "}}", "'", " ", "a", "x.y", "1", "==", "(", ")", "''", "{", "}", "$"])


@BOUNDED
@given(st.lists(TEMPLATE_PIECES | st.text(max_size=4), max_size=12).map("".join), CONTEXTS, STATUS)
def test_templates_raise_only_their_own_errors(text, contexts, status):
    try:
        template = parse_template(text)
    except ExpressionError as err:
        assert 0 <= err.offset <= len(text), (text, err.offset)
        return
    assert "".join(p if isinstance(p, str) else text[p.start:p.end] for p in template.parts) == text
    try:
        assert isinstance(render(template, contexts, status), str)
    except EvaluationError:
        pass


# ---- JSON ------------------------------------------------------------------------------

ROUND_TRIP = parse("fromJSON(toJSON(x))")


@BOUNDED
@given(JSON)
def test_fromjson_of_tojson_gives_the_value_back(value):
    assert same(evaluate(ROUND_TRIP, {"x": value}), value)


NO_FLOATS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)


@BOUNDED
@given(NO_FLOATS)
def test_tojson_is_laid_out_as_json_with_two_space_indents(value):
    assert evaluate(parse("toJSON(x)"), {"x": value}) == json.dumps(value, indent=2, ensure_ascii=False)


# ---- comparison laws -------------------------------------------------------------------

PRIMITIVES = st.none() | st.booleans() | NUMBERS | st.sampled_from([math.nan, math.inf, -math.inf]) \
    | st.text(max_size=4) | NUMERIC_TEXT | st.sampled_from(["a", "A", "b", "ß", "SS", "ı", "I", "σ", "Σ"])
LAWS = {name: parse(text) for name, text in {
    "eq": "a == b", "eq_swapped": "b == a", "ne": "a != b", "lt": "a < b", "gt_swapped": "b > a",
    "le": "a <= b", "ge_swapped": "b >= a",
}.items()}


@BOUNDED
@given(PRIMITIVES, PRIMITIVES)
def test_comparison_laws(a, b):
    r = {name: evaluate(expr, {"a": a, "b": b}) for name, expr in LAWS.items()}
    assert r["eq"] is r["eq_swapped"]
    assert r["ne"] is (not r["eq"])
    assert r["lt"] is r["gt_swapped"]
    assert r["le"] is (r["lt"] or r["eq"]) is r["ge_swapped"]
    assert not (r["lt"] and r["eq"])


@BOUNDED
@given(st.floats(-1e308, 1e308) | st.integers(-(10**30), 10**30))
def test_a_number_as_text_reads_back_to_15_significant_digits(number):
    # (within 1e308: the largest doubles round up, in 15 digits, past the largest)
    text = to_string(number)
    assert math.isclose(parse_number(text), float(number), rel_tol=1e-14, abs_tol=0), (number, text)
