"""Converters for the keys of the workflow language: `if`,
`continue-on-error`, `strategy`, `outputs`, `defaults` and the step keys.
Each checks the value's shape and bounds; the expressions inside are
checked (and placed in the spec) by expressions.py / job_language.py,
which know where each may read what."""

from __future__ import annotations

import re
from typing import Optional

from ..deciding.matrix import KEY_PATTERN
from ..limits import (
    MAX_DOCUMENT_EXPRESSION_CHARS,
    MAX_OUTPUT_DECLARATION_CHARS,
    MAX_OUTPUT_DECLARATIONS,
    MAX_PATH_CHARS,
    MAX_STEP_ID_CHARS,
)
from . import github
from .problems import Problems, Where, got, key_text

OPEN = "${{"
_STEP_ID_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_OUTPUT_NAME_RE = KEY_PATTERN
# GitHub's shells on Linux and macOS runners; a custom one names its script as {0}.
SHELLS = ("bash", "sh", "python", "pwsh")
_WINDOWS_SHELLS = ("cmd", "powershell")


def bounded(value: str, where: Where, problems: Problems) -> bool:
    """Whether text that is (or holds) an expression is within the most
    expression text a document may hold, as /openapi.json says; each
    expression's own bounds are expressions.py's."""
    if len(value) <= MAX_DOCUMENT_EXPRESSION_CHARS:
        return True
    problems.add(where, f"longer than {MAX_DOCUMENT_EXPRESSION_CHARS} characters (the most expression text a"
                 " document holds)")
    return False


def whole(value: object) -> Optional[int]:
    """An integer, or a float with no fraction (3.0: JSON and YAML clients
    may well send one, and JSON Schema counts it an integer). `type is`: a
    bool is an int to Python, but `retries: true` is a mistake."""
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    return None


def condition(value: object, where: Where, problems: Problems) -> Optional[str]:
    """`if:` as written: an expression, with or without `${{ }}` around it
    (checked in expressions.py); a YAML boolean is that literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.strip():
        return value if bounded(value, where, problems) else None
    problems.add(where, "must be an expression, e.g. failure() or ${{ inputs.deploy == 'true' }}" + got(value))
    return None


def flag(value: object, where: Where, problems: Problems) -> Optional[object]:
    """continue-on-error, fail-fast: true, false, or one expression (text)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, str) and OPEN in value:
        return value if bounded(value, where, problems) else None
    problems.add(where, "must be true, false or one ${{ }} expression" + got(value))
    return None


def _count_or_expression(value: object, where: Where, problems: Problems) -> Optional[object]:
    count = whole(value)
    if count is not None and count >= 1:
        return count
    if isinstance(value, str) and OPEN in value:
        return value if bounded(value, where, problems) else None
    problems.add(where, "must be a whole number of at least 1, or one ${{ }} expression")
    return None


_STRATEGY_FIELDS = {"matrix": "matrix", "fail-fast": "fail-fast", "max-parallel": "max-parallel"}


def strategy(value: object, where: Where, problems: Problems) -> Optional[dict]:
    """`strategy: {matrix, fail-fast, max-parallel}`: the matrix is kept as
    written (a mapping, or one expression), checked with its expressions."""
    if not isinstance(value, dict):
        problems.add(where, "must be a mapping: {matrix: {...}, fail-fast: true, max-parallel: N}" + got(value))
        return None
    out: dict = {}
    for key, item in value.items():
        child = where + (key_text(key),)
        if key not in _STRATEGY_FIELDS:
            problems.add(child, "unknown field: a strategy takes matrix, fail-fast and max-parallel"
                         + problems.hint(key, _STRATEGY_FIELDS))
        elif item is None:
            continue
        elif key == "matrix":
            if isinstance(item, str) and OPEN in item:
                if bounded(item, child, problems):
                    out["matrix"] = item
            elif isinstance(item, dict):
                out["matrix"] = item
            else:
                problems.add(child, "must be a mapping of keys to lists of values (with include and exclude),"
                             " or one ${{ }} expression giving one" + got(item))
        elif key == "fail-fast":
            converted = flag(item, child, problems)
            if converted is not None:
                out["fail-fast"] = converted
        else:
            converted = _count_or_expression(item, child, problems)
            if converted is not None:
                out["max-parallel"] = converted
    if "matrix" not in value:
        problems.add(where + ("matrix",), "required: rota's strategy is a matrix")
        return None
    return out if "matrix" in out else None


def outputs(value: object, where: Where, problems: Problems) -> Optional[dict[str, str]]:
    """`outputs: {name: template}`: what the job's dependents read as its outputs."""
    if not isinstance(value, dict):
        problems.add(where, "must be a mapping of output name to value, e.g. {version: ${{ steps.v.outputs.v }}}")
        return None
    if len(value) > MAX_OUTPUT_DECLARATIONS:
        problems.add(where, f"more than {MAX_OUTPUT_DECLARATIONS} outputs (limit for one job)")
        return None
    out: dict[str, str] = {}
    for name, item in value.items():
        child = where + (key_text(name),)
        if not (isinstance(name, str) and _OUTPUT_NAME_RE.fullmatch(name)):
            problems.add(child, "invalid output name: use letters, digits, '_' and '-', starting with a letter or '_'")
        elif not isinstance(item, str):
            problems.add(child, "must be a string" + got(item))
        elif len(item) > MAX_OUTPUT_DECLARATION_CHARS:
            problems.add(child, f"longer than {MAX_OUTPUT_DECLARATION_CHARS} characters (limit for one output)")
        else:
            out[name] = item
    return out


def shell(value: object, where: Where, problems: Problems) -> Optional[str]:
    if not isinstance(value, str) or not value.strip():
        problems.add(where, "must be bash, sh, python, pwsh or a command with {0} for the script" + got(value))
        return None
    if value in _WINDOWS_SHELLS:
        problems.add(where, f"{value} is a Windows shell; rota's workers run bash, sh, python, pwsh or a"
                     " command with {0} for the script")
        return None
    if value not in SHELLS and "{0}" not in value:
        problems.add(where, "must be bash, sh, python, pwsh or a command with {0} where the script's path"
                     " goes (e.g. perl {0})" + problems.hint(value, SHELLS))
        return None
    if len(value) > MAX_PATH_CHARS or OPEN in value:
        problems.add(where, f"must be at most {MAX_PATH_CHARS} characters, without expressions")
        return None
    return value


def directory(value: object, where: Where, problems: Problems) -> Optional[str]:
    if not isinstance(value, str) or not value.strip():
        problems.add(where, "must be a directory (relative to the job's working directory, or absolute)" + got(value))
        return None
    if len(value) > MAX_PATH_CHARS:
        problems.add(where, f"longer than {MAX_PATH_CHARS} characters (limit for a path)")
        return None
    return value


_RUN_DEFAULTS = {"shell": "shell", "working-directory": "working-directory"}


def defaults(value: object, where: Where, problems: Problems) -> Optional[dict]:
    """`defaults: {run: {shell, working-directory}}`; no expressions."""
    if not isinstance(value, dict):
        problems.add(where, "must be a mapping: {run: {shell: ..., working-directory: ...}}" + got(value))
        return None
    out: dict = {}
    for key, item in value.items():
        child = where + (key_text(key),)
        if key != "run":
            problems.add(child, "unknown field: defaults takes run" + problems.hint(key, ("run",)))
            continue
        if not isinstance(item, dict):
            problems.add(child, "must be a mapping: {shell: ..., working-directory: ...}" + got(item))
            continue
        for name, setting in item.items():
            where_of = child + (key_text(name),)
            if name not in _RUN_DEFAULTS:
                problems.add(where_of, "unknown field: defaults.run takes shell and working-directory"
                             + problems.hint(name, _RUN_DEFAULTS))
            elif setting is None:
                continue
            elif name == "shell":
                converted = shell(setting, where_of, problems)
                if converted is not None:
                    out["shell"] = converted
            else:
                converted = directory(setting, where_of, problems)
                if converted is not None:
                    if OPEN in converted:
                        problems.add(where_of, "defaults take no expressions; give working-directory on the step")
                    else:
                        out["working-directory"] = converted
    return out


def step_id(value: object, where: Where, problems: Problems) -> Optional[str]:
    if isinstance(value, str) and _STEP_ID_RE.fullmatch(value) and len(value) <= MAX_STEP_ID_CHARS:
        return value
    problems.add(where, "invalid step id: use letters, digits, '_' and '-', starting with a letter or '_',"
                 f" at most {MAX_STEP_ID_CHARS} characters" + got(value))
    return None


def step_timeout(value: object, where: Where, problems: Problems) -> Optional[object]:
    if type(value) in (int, float) and 0 < value <= 10080:
        return value
    if isinstance(value, str) and OPEN in value:
        return value if bounded(value, where, problems) else None
    problems.add(where, "must be a number of minutes above 0, at most 10080, or one ${{ }} expression")
    return None


# step field -> (Step field, converter); name and run are fields.py's
STEP_CONVERTERS = {
    "id": ("id", step_id),
    "if": ("if", condition),
    "shell": ("shell", shell),
    "working-directory": ("working-directory", directory),
    "timeout-minutes": ("timeout-minutes", step_timeout),
    "continue-on-error": ("continue-on-error", flag),
}

# keys rota still refuses on a step (github.py's table)
STEP_REFUSED = github.STEP
