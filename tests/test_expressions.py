"""The expression language (server/expressions): GitHub's literals, operators,
coercions, property access, functions and templates, its errors with their
offsets, and its bounds. Rows marked "docs" are GitHub's own examples from
"Evaluate expressions in workflows and actions"."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from server.expressions import (
    EvaluationError,
    ExpressionError,
    Piece,
    Reference,
    Status,
    evaluate,
    parse,
    parse_template,
    render,
    to_string,
    truthy,
)
from server.expressions.limits import (
    MAX_DEPTH,
    MAX_EVALUATION_COST,
    MAX_EXPRESSION_CHARS,
    MAX_JSON_DEPTH,
    MAX_VALUE_CHARS,
)


def ev(text: str, contexts: dict | None = None, status: Status | None = None):
    return evaluate(parse(text), contexts or {}, status)


def same(a, b) -> bool:
    """Equal and of the same JSON kind (Python has True == 1 == 1.0)."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or (a != a and b != b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def check(text: str, expected, contexts: dict | None = None) -> None:
    got = ev(text, contexts)
    assert same(got, expected), f"{text!r} gave {got!r}, expected {expected!r}"


# ---- literals ----------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("null", None),                                   # docs
    ("false", False),                                 # docs
    ("true", True),
    ("711", 711),                                     # docs
    ("-9.2", -9.2),                                   # docs
    ("0xff", 255),                                    # docs
    ("-2.99e-2", -0.0299),                            # docs
    ("'It''s open source!'", "It's open source!"),    # docs
    ("'a''b''c'", "a'b'c"),
    ("''", ""),
    ("'${{ x }}'", "${{ x }}"),
    (".5", 0.5),
    ("+1", 1),
    ("1.", 1),
    ("1E+1", 10),
    ("0o17", 15),
    ("Infinity", math.inf),
    ("-Infinity", -math.inf),
    ("'multi\nline'", "multi\nline"),
])
def test_literals(text, expected):
    check(text, expected)


def test_nan_literal_is_a_number_equal_to_nothing():
    assert math.isnan(ev("NaN"))
    assert ev("NaN == NaN") is False and ev("NaN != NaN") is True


def test_whole_numbers_come_back_as_ints():
    assert type(ev("711")) is int and type(ev("1e2")) is int and type(ev("0xff")) is int
    assert type(ev("1.5")) is float
    assert math.copysign(1, ev("-0")) == -1  # -0 stays a float, as GitHub keeps it


def test_keywords_are_case_sensitive_and_only_keywords_outside_property_access():
    assert ev("True", {"true": 1}) == 1  # a context (names ignore case), not the literal
    assert ev("True") is None
    check("foo.true", "it's true", {"foo": {"true": "it's true"}})
    check("foo.null", "n", {"foo": {"null": "n"}})


# ---- operators and precedence ----------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("!true", False),
    ("!0", True),
    ("!!'a'", True),
    ("!''", True),
    ("1 < 2", True),
    ("2 <= 2", True),
    ("3 > 2", True),
    ("2 >= 3", False),
    ("'a' == 'A'", True),                 # docs: GitHub ignores case when comparing strings
    ("'abc' < 'ABD'", True),
    ("1 != 2", True),
    ("true && 'x'", "x"),                 # && returns the deciding operand
    ("0 && 'x'", 0),
    ("null || 'default'", "default"),     # || returns it too: x || 'default'
    ("'set' || 'default'", "set"),
    ("false || ''", ""),
    ("1 && 2 && 3", 3),
    ("0 || 0 || 2 || 3", 2),
    ("!2 < 3", True),                     # ! binds tighter than <
    ("!(2 < 3)", False),
    ("3 < 2 < 1", True),                  # left to right: (3 < 2) < 1 is false < 1
    ("2 == 2 == 1", True),                # (2 == 2) == 1
    ("2 <= 3 == true", True),             # < binds tighter than ==
    ("1 == 1 && 2", 2),                   # == binds tighter than &&
    ("false && 0 || null", None),         # && binds tighter than ||
    ("1 || 2 && 3", 1),
    ("(1 || 2) && 3", 3),
])
def test_operators(text, expected):
    check(text, expected)


def test_ternary_idiom_from_the_docs():
    expr = "github.ref == 'refs/heads/main' && 'value_for_main_branch' || 'value_for_other_branches'"
    assert ev(expr, {"github": {"ref": "refs/heads/main"}}) == "value_for_main_branch"
    assert ev(expr, {"github": {"ref": "refs/heads/dev"}}) == "value_for_other_branches"


def test_and_or_short_circuit_so_the_other_side_is_never_evaluated():
    assert ev("false && fromJSON('not json')") is False
    assert ev("true || fromJSON('not json')") is True
    with pytest.raises(EvaluationError):
        ev("true && fromJSON('not json')")


# ---- coercion (docs: "GitHub performs loose equality comparisons") -----------------

@pytest.mark.parametrize("text, expected", [
    # docs' table: Null -> 0, true -> 1, false -> 0, strings parsed as numbers
    # ('' -> 0, unreadable -> NaN), arrays and objects -> NaN
    ("null == 0", True),
    ("true == 1", True),
    ("false == 0", True),
    ("'' == 0", True),
    ("'  ' == 0", True),
    ("' 1.5 ' == 1.5", True),
    ("' 0xff ' == 255", True),
    ("'1e2' == 100", True),
    ("'abc' == 0", False),
    ("'abc' != 0", True),
    ("'abc' < 1 || 'abc' > 1 || 'abc' == 1", False),   # NaN: no relation holds
    ("arr == 0 || arr > 0 || arr < 0", False),
    ("obj == 0 || obj > 0 || obj < 0", False),
    ("null == false", True),
    ("null == ''", True),
    ("null == '0'", True),
    ("null == 'null'", False),
    ("true == '1'", True),
    ("true == 'true'", False),              # 'true' is NaN as a number
    ("false == ' 0.0 '", True),
    ("'1' == 1.0", True),
    ("NaN == NaN", False),                  # docs: NaN is never equal
    ("Infinity == ' Infinity '", True),
    ("2 > true", True),
    ("null > -1", True),
    ("'b' > 'A'", True),
    ("'B' > 'a'", True),
    ("true > false", True),
    ("arr == arr", True),                   # docs: the same instance
    ("arr == arr2", False),                 # equal contents, different arrays
    ("obj == obj", True),
    ("fromJSON('[]') == fromJSON('[]')", False),
    ("'' == obj", False),
    ("'Object' == obj", False),             # objects are never converted
    # ignoring case as .NET's OrdinalIgnoreCase does: one character to one
    ("'ü' == 'Ü'", True),
    ("'σ' == 'Σ' && 'ς' == 'Σ'", True),
    ("'straße' == 'STRASSE'", False),
    ("'ı' == 'I'", False),
    ("startsWith('İstanbul', 'i')", False),
])
def test_loose_equality_and_ordering(text, expected):
    check(text, expected, {"arr": [], "arr2": [], "obj": {}})


@pytest.mark.parametrize("value, expected", [
    (None, False), (False, False), (0, False), (-0.0, False), (math.nan, False), ("", False),
    (True, True), (1, True), (-1, True), ("0", True), ("false", True), (" ", True), ([], True), ({}, True),
])
def test_truthiness(value, expected):
    assert truthy(value) is expected
    assert ev("!!x", {"x": value}) is expected


@pytest.mark.parametrize("value, text", [
    (None, ""), (True, "true"), (False, "false"), ("s", "s"),
    (1, "1"), (-1, "-1"), (0.5, "0.5"), (-0.0, "0"), (2.0, "2"), (123456.789, "123456.789"),
    (0.84551240822557006, "0.84551240822557"),      # 15 significant digits, as GitHub
    (0.1 + 0.2, "0.3"), (1e14, "100000000000000"), (1e15, "1E+15"), (10**15, "1E+15"),
    (123456789012345678, "1.23456789012346E+17"), (0.0001, "0.0001"), (0.00001, "1E-05"),
    (1.5e-7, "1.5E-07"), (-2.5e20, "-2.5E+20"), (math.inf, "Infinity"), (-math.inf, "-Infinity"),
    (math.nan, "NaN"), (10**400, "Infinity"),
    ([], "Array"), ([1], "Array"), ({}, "Object"),   # toJSON gives the JSON
])
def test_to_string(value, text):
    assert to_string(value) == text
    assert ev("format('{0}', x)", {"x": value}) == text


# ---- property access ---------------------------------------------------------------

FRUITS = [{"name": "apple", "quantity": 1}, {"name": "orange", "quantity": 2}, {"name": "pear", "quantity": 1}]
VEGETABLES = {
    "scallions": {"colors": ["green", "white", "red"], "ediblePortions": ["roots", "stalks"]},
    "beets": {"colors": ["purple", "red", "gold", "white", "pink"], "ediblePortions": ["roots", "stems", "leaves"]},
    "artichokes": {"colors": ["green", "purple", "red", "black"], "ediblePortions": ["hearts", "stems", "leaves"]},
}


@pytest.mark.parametrize("text, expected", [
    ("github.sha", "abc"),
    ("github.b-c._d", 1),                      # names hold letters, digits, _ and -
    ("github['sha']", "abc"),
    ("GITHUB.SHA", "abc"),                     # contexts and properties ignore case
    ("github.event.labels[1].name", "docs"),
    ("github.event.labels[' 1 ']", {"name": "docs"}),   # an index is read as a number
    ("github.event.labels[1.9].name", "docs"),  # and rounded down
    ("github.event.labels[-1]", None),
    ("github.event.labels[5]", None),
    ("github.event.labels['x']", None),
    ("github.missing", None),
    ("github.missing.deeper", None),            # property access on null is null
    ("nosuchcontext.x", None),                  # an unknown context is null at run time
    ("github.sha.length", None),                # no properties on a string
    ("counts[1]", "one"),                       # an object's key is the index's text
    ("counts[true]", "yes"),
    ("github.event.labels.*.name", ["bug", "docs"]),
    ("github.event.labels[*].name", ["bug", "docs"]),
    ("github.event.labels.*.nope", []),
    ("github.sha.*", []),
    ("fruits.*.name", ["apple", "orange", "pear"]),                        # docs
    ("vegetables.*.ediblePortions",                                        # docs
     [["roots", "stalks"], ["roots", "stems", "leaves"], ["hearts", "stems", "leaves"]]),
    ("vegetables.*.ediblePortions.*", ["roots", "stalks", "roots", "stems", "leaves", "hearts", "stems", "leaves"]),
    ("vegetables.*.colors[0]", ["green", "purple", "green"]),
    ("(fruits.*).quantity", [1, 2, 1]),         # a grouped filter still filters
    ("fromJSON(toJSON(fruits.*)).name", None),  # a plain array does not
    ("fromJSON('{\"a\": {\"b\": 1}}').a.b", 1),
    ("fromJSON('[10, 20]')[1]", 20),
])
def test_property_access(text, expected):
    contexts = {
        "github": {"sha": "abc", "b-c": {"_d": 1}, "event": {"labels": [{"name": "bug"}, {"name": "docs"}]}},
        "counts": {"1": "one", "true": "yes"},
        "fruits": FRUITS,
        "vegetables": VEGETABLES,
    }
    check(text, expected, contexts)


def test_exact_key_wins_over_a_case_insensitive_one():
    contexts = {"o": {"Key": 1, "key": 2, "KEY": 3}}
    assert ev("o.key", contexts) == 2
    assert ev("o.kEy", contexts) == 1  # no exact match: the first in order


def test_a_null_value_is_kept_by_a_filter_and_a_missing_key_is_skipped():
    assert ev("xs.*.a", {"xs": [{"a": None}, {"b": 1}, {"A": 2}]}) == [None, 2]


def test_filtered_array_comes_back_as_a_plain_list():
    value = ev("xs.*", {"xs": {"a": 1}})
    assert type(value) is list and value == [1]


def test_the_value_is_the_contexts_own_not_a_copy():
    needs = {"build": {"outputs": {"v": "1"}}}
    assert ev("needs.build", {"needs": needs}) is needs["build"]


# ---- functions ---------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("contains('Hello world', 'llo')", True),                                  # docs
    ("contains('Hello world', 'LLO')", True),
    ("contains('abc', '')", True),
    ("contains('1234', 23)", True),
    ("contains('true', true)", True),
    ("contains(labels.*.name, 'bug')", True),                                  # docs
    ("contains(labels.*.name, 'BUG')", True),
    ("contains(labels.*.name, 'nope')", False),
    ("contains(fromJSON('[\"push\", \"pull_request\"]'), 'push')", True),      # docs
    ("contains(fromJSON('[1, 2]'), '2')", True),                              # elements compare as ==
    ("contains(fromJSON('[[1]]'), fromJSON('[1]'))", False),                  # arrays only by identity
    ("contains(labels, 'bug')", False),
    ("contains('abc', labels)", False),
    ("startsWith('Hello world', 'He')", True),                                 # docs
    ("startsWith('Hello world', 'he')", True),
    ("startsWith('Hello world', 'x')", False),
    ("startsWith(labels, '')", False),
    ("endsWith('Hello world', 'ld')", True),                                   # docs
    ("endsWith('Hello world', 'LD')", True),
    ("endsWith(123, 3)", True),
    ("format('Hello {0} {1} {2}', 'Mona', 'the', 'Octocat')", "Hello Mona the Octocat"),      # docs
    ("format('{{Hello {0} {1} {2}!}}', 'Mona', 'the', 'Octocat')", "{Hello Mona the Octocat!}"),  # docs
    ("format('{0}{0}{1}', 'a', 'b')", "aab"),
    ("format('{{0}}', 'a')", "{0}"),
    ("format('}}{{', 'a')", "}{"),
    ("format('{1}', 'a', 'b')", "b"),
    ("format('{0}', fromJSON('{}'))", "Object"),
    ("format('{0}', 'x', fromJSON('bad'))", "x"),          # an unused argument is never evaluated
    ("format(null)", ""),
    ("join(labels.*.name, ', ')", "bug, help wanted"),     # docs
    ("join(labels.*.name)", "bug,help wanted"),
    ("join(fromJSON('[1, true, null, \"s\", [], {}]'))", "1,true,,s,Array,Object"),
    ("join(fromJSON('[1, 2]'), 0)", "102"),
    ("join(fromJSON('[1, 2]'), labels)", "1,2"),          # a separator that is not a primitive: ','
    ("join('abc')", "abc"),
    ("join(fromJSON('{}'))", ""),
    ("join(fromJSON('[]'), 'x')", ""),
    ("toJSON('x')", '"x"'),
    ("toJSON(null)", "null"),
    ("toJSON(1.5)", "1.5"),
    ("toJSON(-0)", "0"),
    ("toJSON(fromJSON('[]'))", "[]"),
    ("toJSON(fromJSON('{}'))", "{}"),
    ("toJSON(fromJSON('{\"a\": [1, {\"b\": null}], \"c\": {}}'))",
     '{\n  "a": [\n    1,\n    {\n      "b": null\n    }\n  ],\n  "c": {}\n}'),   # GitHub's layout
    ("toJSON('é\"\\\n')", '"é\\"\\\\\\n"'),
    ("fromJSON('null')", None),
    ("fromJSON(' 42 ')", 42),
    ("fromJSON('\"s\"')", "s"),
    ("fromJSON('true')", True),
    ("fromJSON('NaN') == NaN", False),
    ("fromJSON('{\"a\": 1, \"a\": 2}').a", 2),             # a repeated key: the last
    ("fromJSON('[1, 2]')", [1, 2]),
    ("case(true, 'a', 'b')", "a"),
    ("case(false, 'a', 1 == 1, 'b', 'c')", "b"),
    ("case(false, 'a', false, 'b', 'c')", "c"),
    ("case(true, 'a', fromJSON('bad'))", "a"),             # only the chosen value is evaluated
    ("TOjson(1)", "1"),                                    # function names ignore case
    ("FromJson('1')", 1),
])
def test_functions(text, expected):
    check(text, expected, {"labels": [{"name": "bug"}, {"name": "help wanted"}]})


def test_fromjson_of_a_job_output_is_the_docs_dynamic_matrix():
    output = '{"include": [{"project": "foo", "config": "Debug"}, {"project": "bar", "config": "Release"}]}'
    value = ev("fromJSON(needs.job1.outputs.matrix)", {"needs": {"job1": {"outputs": {"matrix": output}}}})
    assert value == {"include": [{"project": "foo", "config": "Debug"}, {"project": "bar", "config": "Release"}]}
    assert ev("fromJSON(x).include.*.project", {"x": output}) == ["foo", "bar"]


def test_fromjson_makes_numbers_to_compare_as_numbers():
    # docs: outputs are strings; fromJSON() for a numerical comparison
    assert ev("fromJSON(x) > 9", {"x": "10"}) is True
    assert ev("x > '9'", {"x": "10"}) is False  # two strings compare as text


@pytest.mark.parametrize("text, message", [
    ("format('{0}')", "refers to argument {0} but has 0"),
    ("format('{0}{1}', 'a')", "refers to argument {1} but has 1"),
    ("format('{0')", "format() string is invalid"),
    ("format('{0}}', 'a')", "format() string is invalid"),
    ("format('}')", "format() string is invalid"),
    ("format('{x}', 'a')", "format() string is invalid"),
    ("format('{9999}', 'a')", "format() string is invalid"),
    ("format('{0:N2}', 1)", "format specifiers"),
    ("fromJSON('')", "fromJSON() of empty text"),
    ("fromJSON('  ')", "fromJSON() of empty text"),
    ("fromJSON('{')", "fromJSON(): not JSON"),
    ("fromJSON('[1,]')", "fromJSON(): not JSON"),
    ("fromJSON('''single''')", "fromJSON(): not JSON"),
    ("fromJSON('1' + '2')", None),  # not reached: a parse error (no + operator)
    ("case(1, 'a', 'b')", "case() predicate 1 is a number, not a boolean"),
    ("case(false, 'a', 'yes', 'b', 'c')", "case() predicate 2 is a string"),
])
def test_function_errors(text, message):
    if message is None:
        with pytest.raises(ExpressionError):
            parse(text)
        return
    with pytest.raises(EvaluationError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("{", r"\{").replace("}", r"\}")):
        ev(text)


def test_fromjson_error_says_where_the_json_is_wrong():
    with pytest.raises(EvaluationError) as err:
        ev("fromJSON(x)", {"x": '{"a": 1,\n "b": }'})
    assert "line 2, column 7" in err.value.message


# ---- status functions --------------------------------------------------------------

@pytest.mark.parametrize("status, expected", [
    (Status(success=True), {"success": True, "failure": False, "cancelled": False, "always": True}),
    (Status(success=False, failure=True), {"success": False, "failure": True, "cancelled": False, "always": True}),
    (Status(success=False, cancelled=True), {"success": False, "failure": False, "cancelled": True, "always": True}),
])
def test_status_functions_answer_from_the_status(status, expected):
    for name, value in expected.items():
        assert ev(f"{name}()", status=status) is value


def test_status_functions_without_a_status_are_an_evaluation_error():
    for name in ("success", "failure", "cancelled", "always"):
        with pytest.raises(EvaluationError, match="not available here"):
            ev(f"{name}()")
    assert ev("false && success()") is False  # never called, so no error


def test_status_functions_take_no_arguments():
    with pytest.raises(ExpressionError, match=r"success\(\) takes no arguments \(got 1\)"):
        parse("success('x')")


# ---- what a checker reads from a parsed expression ----------------------------------

@pytest.mark.parametrize("text, contexts", [
    ("needs.build.outputs.version", {("needs", "build")}),
    ("needs['build'].result", {("needs", "build")}),
    ("NEEDS.Build.result", {("needs", "Build")}),          # context lowercased, property as written
    ("matrix", {("matrix", None)}),
    ("needs.*.result", {("needs", None)}),
    ("needs[matrix.job].result", {("needs", None), ("matrix", "job")}),
    ("needs[1]", {("needs", None)}),
    ("format('{0}', inputs.v, run.id) || env.X", {("inputs", "v"), ("run", "id"), ("env", "X")}),
    ("'needs.build' == fromJSON('1')", set()),
    ("(needs).build", {("needs", "build")}),               # parentheses change nothing
])
def test_contexts_an_expression_reads(text, contexts):
    assert parse(text).contexts() == contexts


def test_references_carry_the_offset_of_the_context_name():
    refs = parse("a.b || x[  c.d ]").references()
    assert refs == [Reference("a", "b", 0), Reference("x", None, 7), Reference("c", "d", 11)]


@pytest.mark.parametrize("text, calls", [
    ("success()", True),
    ("always()", True),
    ("needs.a.result == 'failure' || Failure()", True),
    ("contains(format('{0}', cancelled()), 'x')", True),
    ("needs.success.result", False),          # a property named like one is not a call
    ("'failure()'", False),
])
def test_calls_status_function(text, calls):
    assert parse(text).calls_status_function() is calls


# ---- syntax errors, each with its offset -------------------------------------------

@pytest.mark.parametrize("text, message, offset", [
    ("", "empty expression", 0),
    ("   ", "empty expression", 3),
    ("1 <", "unexpected end of expression after '<'", 2),
    ("1 < )", "unexpected symbol ')'", 4),
    ("> 1", "unexpected symbol '>'", 0),
    ("1 2", "unexpected symbol '2'", 2),
    ("(1)2", "unexpected symbol '2'", 3),
    ("foo 2", "unexpected symbol '2'", 4),
    ("foo.1", "unexpected symbol '1'", 4),
    ("foo.()", "unexpected symbol '('", 4),
    ("'a'.b", "unexpected symbol '.b'", 3),     # no properties on a literal: .b reads as a number
    ("(1", "unclosed '(': no matching ')'", 0),
    ("true ||( false && false", "unclosed '('", 7),
    ("format('a'", "unclosed '(' of format(", 6),
    ("endswith(1, 2 a)", "unexpected symbol 'a'", 14),
    ("(1,", "unexpected symbol ','", 2),
    ("1 = 2", "unexpected symbol '='; write '=='", 2),
    ("1 =2", "unexpected symbol '=2'", 2),
    ("a & b", "unexpected symbol '&'; write '&&'", 2),
    ("a | b", "unexpected symbol '|'; write '||'", 2),
    ("'open", "unclosed string", 0),
    ("x == 'it's'", "unexpected symbol \"s'\"; a quote inside a string is written ''", 9),
    ('"double"', "unexpected symbol '\"double\"'; strings take single quotes: 'text'", 0),
    ("1 @abc 2", "unexpected symbol '@abc'", 2),
    ("a-1 + 2", "unexpected symbol '+'", 4),    # a-1 is a name (hyphens are allowed); + is no operator
    ("1-2", "unexpected symbol '1-2'", 0),
    ("0x1g", "unexpected symbol '0x1g'", 0),
    ("-0xFF", "unexpected symbol '-0xFF'", 0),
    ("..github/workflow.md", "unexpected symbol '..github/workflow.md'", 0),
    ("nonExistent()", "unknown function nonExistent(); the functions are contains(), startsWith()", 0),
    ("x && hashFiles('a')", "unknown function hashFiles()", 5),
    ("join()", "join() takes 1 or 2 arguments (got 0)", 0),
    ("join(1, 2, 3)", "join() takes 1 or 2 arguments (got 3)", 0),
    ("contains('a')", "contains() takes 2 arguments (got 1)", 0),
    ("case(true, 1)", "case() takes 3 to 255 arguments (got 2)", 0),
    ("case(true, 1, false, 2)", "case() takes an odd number of arguments", 0),
    ("x.y\n  && 😊", "unexpected symbol '😊'", 9),
])
def test_syntax_errors(text, message, offset):
    with pytest.raises(ExpressionError) as err:
        parse(text)
    assert err.value.message.startswith(message), err.value.message
    assert err.value.offset == offset


def test_a_trailing_comma_in_arguments_is_accepted_as_github_does():
    assert ev("format('{0}', 'a',)") == "a"


# ---- bounds ------------------------------------------------------------------------

def test_depth_is_counted_as_github_counts_it():
    assert ev("!" * (MAX_DEPTH - 1) + " false") is True
    with pytest.raises(ExpressionError, match=f"nested deeper than {MAX_DEPTH} levels"):
        parse("!" * MAX_DEPTH + " false")
    deep = "foo" + "".join(f"._{n}" for n in range(1, MAX_DEPTH))
    assert ev(deep, {"foo": None}) is None
    with pytest.raises(ExpressionError):
        parse(deep + "._50")
    with pytest.raises(ExpressionError, match="nested deeper"):
        parse("(" * MAX_DEPTH + "1" + ")" * MAX_DEPTH)


def test_long_chains_of_one_operator_cost_no_depth():
    assert ev(" || ".join(["0"] * 2000)) == 0
    assert ev(" == ".join(["1"] * 2000)) is True


def test_expression_length_is_bounded():
    text = "'" + "a" * (MAX_EXPRESSION_CHARS - 2) + "'"
    assert len(ev(text)) == MAX_EXPRESSION_CHARS - 2
    with pytest.raises(ExpressionError, match=f"longer than {MAX_EXPRESSION_CHARS} characters"):
        parse(text + " ")


def test_format_doubling_hits_the_value_bound_not_the_memory():
    text = "'x'"
    for _ in range(30):  # 2**30 characters if nothing stopped it
        text = f"format('{{0}}{{0}}', {text})"
    with pytest.raises(EvaluationError, match=f"format\\(\\) result longer than {MAX_VALUE_CHARS} characters"):
        ev(text)


def test_join_and_tojson_results_are_bounded():
    big = ["x" * 1000] * 2000  # 2 MB of text
    with pytest.raises(EvaluationError, match="join\\(\\) result longer"):
        ev("join(big)", {"big": big})
    with pytest.raises(EvaluationError, match="toJSON\\(\\) result longer"):
        ev("toJSON(big)", {"big": big})


def test_many_bounded_results_still_hit_the_evaluation_cost():
    half = {"s": "x" * (MAX_VALUE_CHARS // 2)}
    calls = MAX_EVALUATION_COST // (MAX_VALUE_CHARS // 2) + 1
    ev("toJSON(c)", {"c": half})
    with pytest.raises(EvaluationError, match="too much work"):
        ev(" && ".join(["toJSON(c)"] * calls), {"c": half})


def test_many_comparisons_of_a_large_output_hit_the_evaluation_cost():
    big = "x" * (MAX_VALUE_CHARS // 2)
    calls = MAX_EVALUATION_COST // len(big) + 1
    with pytest.raises(EvaluationError, match="too much work"):
        ev(" || ".join(["o == 'y'"] * calls), {"o": big})


def test_fromjson_input_size_and_nesting_are_bounded():
    with pytest.raises(EvaluationError, match="longer than"):
        ev("fromJSON(x)", {"x": " " * MAX_VALUE_CHARS + "1"})
    ok = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert ev("toJSON(fromJSON(x))", {"x": ok}).count("[") == MAX_JSON_DEPTH
    with pytest.raises(EvaluationError, match="nested deeper than"):
        ev("fromJSON(x)", {"x": "[" + ok + "]"})
    with pytest.raises(EvaluationError):  # deeper than Python's own recursion limit
        ev("fromJSON(x)", {"x": "[" * 100_000 + "]" * 100_000})
    with pytest.raises(EvaluationError, match="not JSON that can be read"):
        ev("fromJSON(x)", {"x": "1" * 5000})  # more digits than Python converts


def test_tojson_of_a_context_nested_too_deep_is_an_evaluation_error():
    value: list = []
    for _ in range(MAX_JSON_DEPTH + 1):
        value = [value]
    with pytest.raises(EvaluationError, match="nested deeper than"):
        ev("toJSON(x)", {"x": value})


def test_a_value_that_is_not_json_is_an_evaluation_error():
    with pytest.raises(EvaluationError, match="not a JSON value"):
        ev("x == 1", {"x": {1, 2}})


# ---- templates ---------------------------------------------------------------------

def test_parse_template_splits_text_and_expressions_with_offsets():
    t = parse_template("v${{ inputs.version }}-${{matrix.os}}!")
    assert [p if isinstance(p, str) else (p.start, p.end) for p in t.parts] == ["v", (1, 22), "-", (23, 37), "!"]
    assert t.contexts() == {("inputs", "version"), ("matrix", "os")}
    assert t.pieces[0].expr.offset == 11  # the '.' of inputs.version, counted in the whole text
    assert not t.is_literal and t.only_expression is None
    assert render(t, {"inputs": {"version": 2}, "matrix": {"os": "linux"}}) == "v2-linux!"


def test_a_template_without_expressions_is_its_text():
    t = parse_template("plain } text {{ }}")
    assert t.is_literal and t.parts == ("plain } text {{ }}",)
    assert render(t, {}) == "plain } text {{ }}"
    assert parse_template("").parts == ()


def test_only_expression_ignores_surrounding_blanks():
    assert parse_template("  ${{ always() }} ").only_expression.name == "always"
    assert parse_template("${{ a }}${{ b }}").only_expression is None


def test_a_closing_brace_pair_inside_a_string_does_not_end_the_expression():
    t = parse_template("${{ '}}' }}${{ '${{' }}${{ 'It''s }}' }}")
    assert render(t, {}) == "}}${{It's }}"
    assert len(t.pieces) == 3


@pytest.mark.parametrize("text, message, offset", [
    ("a ${{ x", "unclosed '${{': no '}}' after it", 2),
    ("${{ x }} ${{", "unclosed '${{'", 9),
    ("a ${{ }}", "empty expression '${{ }}'", 2),
    ("a ${{}}", "empty expression '${{}}'", 2),
    ("a ${{ x == }}", "unexpected end of expression after '=='", 8),
    ("line\n${{ 1 2 }}", "unexpected symbol '2'", 11),
    ("${{ 'open }}", "unclosed string", 4),
])
def test_template_errors_have_offsets_in_the_whole_text(text, message, offset):
    with pytest.raises(ExpressionError) as err:
        parse_template(text)
    assert err.value.message.startswith(message), err.value.message
    assert err.value.offset == offset


def test_render_converts_each_value_as_github_does():
    t = parse_template("[${{ n }}|${{ t }}|${{ f }}|${{ o }}|${{ a }}|${{ toJSON(a) }}|${{ x }}]")
    assert render(t, {"n": None, "t": True, "f": 1.5, "o": {}, "a": [1]}) == "[|true|1.5|Object|Array|[\n  1\n]|]"


def test_render_is_bounded_as_one_expression_is():
    big = "x" * (MAX_VALUE_CHARS // 4)
    t = parse_template("${{ o }}" * 5)
    with pytest.raises(EvaluationError, match="rendered text longer than"):
        render(t, {"o": big})


def test_render_of_a_status_function_uses_the_status():
    assert render(parse_template("${{ failure() }}"), {}, Status(success=False, failure=True)) == "true"
    with pytest.raises(EvaluationError):
        render(parse_template("${{ failure() }}"), {})


def test_piece_is_exported_for_callers_that_walk_parts():
    assert isinstance(parse_template("${{ 1 }}").parts[0], Piece)


# ---- the package ----------------------------------------------------------------------

def test_errors_pickle_with_their_offset():
    import pickle
    err = pickle.loads(pickle.dumps(ExpressionError("m", 3)))
    assert (err.message, err.offset) == ("m", 3)


def test_the_package_imports_nothing_else_from_the_server_or_the_worker():
    code = ("import sys, server.expressions; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('server', 'worker')"
            " and not m.startswith('server.expressions') and m != 'server'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
