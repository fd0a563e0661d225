"""GitHub's matrix rules ("Using a matrix for your jobs"), for a matrix as
a plain JSON value: at submit for a static matrix, when its job is decided
for one that holds expressions.

    {os: [linux, mac], py: ['3.11', '3.12'],
     exclude: [{os: mac, py: '3.11'}],
     include: [{os: linux, py: '3.12', extra: true}, {os: windows}]}

1. The combinations are the product of the vectors (each key but include
   and exclude: a non-empty list), in the order written.
2. `exclude` removes each combination an entry matches: every key of the
   entry (a vector's) has that value (a partial match excludes).
3. `include`, entry by entry: the entry's keys and values are added to
   every original combination whose original values it does not
   overwrite (a value an earlier include added may be overwritten); an
   entry added to none becomes a combination of its own.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Collection
from typing import Any

from ..expressions import to_string
from ..limits import MAX_COMBINATION_CHARS, MAX_MATRIX_COMBINATIONS, MAX_MATRIX_PRODUCT, MAX_NAME_CHARS

KEY_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
MAX_KEY_CHARS = 100
MAX_ID_CHARS = 128
_SLUG = re.compile(r"[^A-Za-z0-9_.]+")
_NAME_VALUE_CHARS = 64  # of each value shown in a combination's display name


class MatrixError(ValueError):
    """A matrix that cannot be expanded: `where` is the path inside the
    matrix (("include", 2, "os")), for a caller that can position it."""

    def __init__(self, message: str, where: tuple = ()) -> None:
        super().__init__(message)
        self.message = message
        self.where = where


def expand(matrix: Any) -> list[dict[str, Any]]:
    """The combinations of `matrix`, each a mapping of key to value, in
    GitHub's order. Raises MatrixError, having done work bounded by
    MAX_MATRIX_PRODUCT whatever the matrix."""
    if not isinstance(matrix, dict):
        raise MatrixError("a matrix must be a mapping of keys to lists of values, with include and exclude")
    vectors: dict[str, list] = {}
    for key, values in matrix.items():
        if key in ("include", "exclude"):
            continue
        _check_key(key, (key,))
        if not isinstance(values, list):
            raise MatrixError(f"matrix key {key!r} must be a list of values", (key,))
        if not values:
            raise MatrixError(f"matrix key {key!r} has no values", (key,))
        vectors[key] = values
    include = _entries(matrix, "include")
    exclude = _entries(matrix, "exclude")
    if not vectors and not include:
        raise MatrixError("a matrix needs at least one key with values, or include")
    size = 1
    for values in vectors.values():
        size *= len(values)
        if size > MAX_MATRIX_PRODUCT:
            raise MatrixError(f"the matrix's keys make more than {MAX_MATRIX_PRODUCT} combinations"
                              f" before exclude (at most {MAX_MATRIX_COMBINATIONS} may run)")
    for index, entry in enumerate(exclude):
        for key in entry:
            if key not in vectors:
                raise MatrixError(f"exclude key {key!r} is not one of the matrix's keys"
                                  f" ({', '.join(vectors) or 'none'})", ("exclude", index, key))
    originals: list[dict[str, Any]] = []
    if vectors:
        for values in itertools.product(*vectors.values()):
            combination = dict(zip(vectors, values))
            if not any(all(same(combination[k], v) for k, v in entry.items()) for entry in exclude):
                originals.append(combination)
    added: list[dict[str, Any]] = []
    for index, entry in enumerate(include):
        for key in entry:
            _check_key(key, ("include", index, key))
        matched = False
        for combination in originals:
            if all(same(combination[k], v) for k, v in entry.items() if k in vectors):
                combination.update(entry)
                matched = True
        if not matched:
            added.append(dict(entry))
    combinations = originals + added
    if not combinations:
        raise MatrixError("the matrix has no combinations left after exclude")
    if len(combinations) > MAX_MATRIX_COMBINATIONS:
        raise MatrixError(f"the matrix makes {len(combinations)} combinations; at most {MAX_MATRIX_COMBINATIONS}")
    for index, combination in enumerate(combinations):
        if len(json_text(combination)) > MAX_COMBINATION_CHARS:
            raise MatrixError(f"combination {index + 1}'s values are longer than {MAX_COMBINATION_CHARS}"
                              " characters as JSON")
    return combinations


def _check_key(key: object, where: tuple) -> None:
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key) or len(key) > MAX_KEY_CHARS:
        raise MatrixError(f"invalid matrix key {key!r}: use letters, digits, '_' and '-', starting with a"
                          f" letter or '_', at most {MAX_KEY_CHARS} characters (so matrix.<key> can name it)",
                          where)


def _entries(matrix: dict, name: str) -> list[dict]:
    entries = matrix.get(name, [])
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise MatrixError(f"{name} must be a list of mappings", (name,))
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise MatrixError(f"each {name} entry must be a mapping of keys to values", (name, index))
    return entries


def same(a: Any, b: Any) -> bool:
    """JSON equality: kinds must agree (true is not 1), numbers by value."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a is b or (type(a) is type(b) and a == b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return False


def json_text(value: Any) -> str:
    """Compact JSON, NaN and the infinities written as fromJSON reads them."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=True)


def value_text(value: Any) -> str:
    """A value as a combination's name shows it: text as text, an array or
    object as its JSON."""
    if isinstance(value, (list, dict)):
        return json_text(value)
    return to_string(value)


def display_name(name: str, combination: dict[str, Any]) -> str:
    """GitHub's default: `build (linux, 3.12)`."""
    shown = []
    for value in combination.values():
        text = value_text(value)
        shown.append(text if len(text) <= _NAME_VALUE_CHARS else text[:_NAME_VALUE_CHARS - 1] + "…")
    full = f"{name} ({', '.join(shown)})"
    return full if len(full) <= MAX_NAME_CHARS else full[:MAX_NAME_CHARS - 1] + "…"


def combination_ids(job_id: str, combinations: list[dict[str, Any]], taken: Collection[str]) -> list[str]:
    """A job id for each combination, stable for the same job and values:
    `build-linux-3.12`, or where that would be too long or clash (with
    another combination or a job already in the run) the job id and a hash
    of the values, `build-5f3a09c1` (and `-2`, `-3` ... for equal values)."""
    ids: list[str] = []
    used = set(taken)
    for combination in combinations:
        slug = "-".join(_SLUG.sub("-", value_text(v)).strip("-") or "x" for v in combination.values())
        candidate = f"{job_id}-{slug}"
        if len(candidate) > MAX_ID_CHARS or candidate in used:
            digest = hashlib.sha1(json_text(combination).encode("utf-8", "surrogatepass")).hexdigest()[:8]
            base = f"{job_id[:MAX_ID_CHARS - 9 - 4]}-{digest}"
            candidate, n = base, 1
            while candidate in used:
                n += 1
                candidate = f"{base}-{n}"
        used.add(candidate)
        ids.append(candidate)
    return ids
