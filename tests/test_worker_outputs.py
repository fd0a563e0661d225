import pytest

from worker.daemon.outputs import (
    MAX_ENV_STRING_BYTES,
    EnvTooLarge,
    ExpressionError,
    OutputFileError,
    parse_output_file,
    resolve_env,
)


def test_key_value_lines():
    assert parse_output_file("a=1\nb=x=y\n\nempty=\n") == {"a": "1", "b": "x=y", "empty": ""}


def test_later_value_wins():
    assert parse_output_file("a=1\na=2\n") == {"a": "2"}


def test_heredoc_multiline_value():
    text = "notes<<EOF\nline one\n\nline=three\nEOF\nafter=1\n"
    assert parse_output_file(text) == {"notes": "line one\n\nline=three", "after": "1"}


def test_first_marker_decides_the_form():
    assert parse_output_file("cmd=a<<b\n") == {"cmd": "a<<b"}
    assert parse_output_file("k<<X=Y\nv\nX=Y\n") == {"k": "v"}


def test_crlf_lines():
    assert parse_output_file("a=1\r\nb<<E\r\nx\r\nE\r\n") == {"a": "1", "b": "x"}


@pytest.mark.parametrize(
    "text, message",
    [
        ("just text\n", "line 1: expected key=value"),
        ("=value\n", "line 1: expected key=value"),
        ("k<<EOF\nnever closed\n", "delimiter 'EOF' never closes"),
        ("k<<\nx\n", "empty heredoc delimiter"),
    ],
)
def test_bad_output_file(text, message):
    with pytest.raises(OutputFileError, match=message):
        parse_output_file(text)


UPSTREAM = {"build": {"version": "1.2.3", "tag": "v1"}, "a.b": {"k": "dotted"}}


def test_needs_expressions_resolve_inside_env_values():
    env = {
        "VERSION": "${{ needs.build.outputs.version }}",
        "REF": "release-${{needs.build.outputs.tag}}-${{ needs.build.outputs.version }}",
        "DOTTED": "${{ needs.a.b.outputs.k }}",
        "PLAIN": "no expressions $HOME",
    }
    assert resolve_env(env, UPSTREAM) == {
        "VERSION": "1.2.3",
        "REF": "release-v1-1.2.3",
        "DOTTED": "dotted",
        "PLAIN": "no expressions $HOME",
    }


def test_missing_output_is_empty_like_github():
    env = {"A": "x${{ needs.build.outputs.nope }}y", "B": "${{ needs.ghost.outputs.k }}"}
    assert resolve_env(env, UPSTREAM) == {"A": "xy", "B": ""}


def test_values_are_never_evaluated():
    upstream = {"u": {"k": "$(rm -rf /) ${{ needs.u.outputs.k }}"}}
    assert resolve_env({"V": "${{ needs.u.outputs.k }}"}, upstream) == {"V": upstream["u"]["k"]}


def test_unsupported_expression_is_an_error():
    with pytest.raises(ExpressionError, match=r"env SHA: unsupported expression '\$\{\{ github.sha \}\}'"):
        resolve_env({"SHA": "${{ github.sha }}"}, UPSTREAM)


def test_a_value_too_large_for_one_environment_variable_is_an_error_in_words():
    # Linux takes at most 128 KiB per "NAME=value" string; past it the job
    # could not even start (errno 7, "Argument list too long").
    big = {"build": {"report": "r" * MAX_ENV_STRING_BYTES}}
    with pytest.raises(EnvTooLarge, match=r"^env REPORT: the value is 131072 bytes, too large for an environment"
                                          r" variable \(131072 bytes at most, name included\); read large outputs"
                                          r" from the JSON file that \$ROTA_UPSTREAM_OUTPUTS names instead$"):
        resolve_env({"REPORT": "${{ needs.build.outputs.report }}"}, big)
    fits = {"build": {"report": "r" * (MAX_ENV_STRING_BYTES - len("REPORT") - 2)}}
    assert resolve_env({"REPORT": "${{ needs.build.outputs.report }}"}, fits)["REPORT"] == fits["build"]["report"]


def test_multibyte_values_count_in_bytes():
    upstream = {"b": {"k": "é" * (MAX_ENV_STRING_BYTES // 2)}}  # 2 bytes each
    with pytest.raises(EnvTooLarge):
        resolve_env({"K": "${{ needs.b.outputs.k }}"}, upstream)
