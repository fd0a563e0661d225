"""Text -> plain data, with where each key and item sits.

YAML goes through a size pre-pass over the parser's events first, so that
nothing the loader would choke on, and nothing that aliases would multiply
past what a plain document could hold, is ever composed or constructed.
"""

from __future__ import annotations

import json
import re

import yaml

from ..limits import MAX_EXPANDED_CHARS, MAX_YAML_DEPTH, MAX_YAML_VALUES
from .problems import DefinitionError, Position, Positions, Problems, Where, problem

YAML_MEDIA_TYPES = frozenset({"application/yaml", "text/yaml", "application/x-yaml", "text/x-yaml"})
FILE_MEDIA_TYPES = {".yml": "application/yaml", ".yaml": "application/yaml", ".json": "application/json"}


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def decode(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        message = f"not UTF-8 text (bad byte at offset {err.start})"
        raise DefinitionError([problem("document", message)]) from None


def _text_position(text: str, index: int) -> Position:
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1


def load_json(text: str, problems: Problems) -> object:
    def unique_keys(pairs: list[tuple[str, object]]) -> dict:
        # json.loads would silently keep the last of two equal keys.
        obj: dict = {}
        for key, value in pairs:
            if key in obj:
                problems.add((), f"duplicate key {key!r}")
            obj[key] = value
        return obj

    def no_constants(name: str) -> object:
        raise ValueError(f"{name} is not a JSON value")

    try:
        return json.loads(text, object_pairs_hook=unique_keys, parse_constant=no_constants)
    except json.JSONDecodeError as err:
        found = problem("document", f"invalid JSON: {err.msg}", (err.lineno, err.colno))
    except ValueError as err:
        found = problem("document", f"invalid JSON: {err}")
    except RecursionError:
        found = problem("document", "invalid JSON: nested too deeply")
    raise DefinitionError([found])


_DROPPED_TAGS = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp"}


# libyaml's loader where PyYAML was built with it: several times faster.
class _YamlLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """SafeLoader with YAML 1.2 booleans and no timestamps.

    YAML 1.1 reads `on`, `off`, `yes` and `no` as booleans, which would turn
    the `on:` key into True and `env: {CI: yes}` into "true". Timestamps
    would turn `VERSION: 2024-01-01` into a date object.
    """

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_TAGS]
        for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
    }

    def construct_object(self, node: yaml.Node, deep: bool = False) -> object:
        # SafeConstructor lets bad scalars escape as plain exceptions
        # (`!!int abc`, `!!bool maybe`, a 5000-digit int); give them a position.
        try:
            return super().construct_object(node, deep)
        except (ValueError, KeyError, AttributeError):
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise yaml.constructor.ConstructorError(None, None, f"not a valid {tag}", node.start_mark) from None


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml(text: str, problems: Problems) -> tuple[object, dict[Where, Position]]:
    try:
        _check_yaml_size(text)
        loader = _YamlLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None, {}
            positions = _index_yaml(node, problems, text)
            return loader.construct_document(node), positions
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        message = ", ".join(part for part in (err.context, err.problem) if part)
        if "mapping values are not allowed" in message:  # libyaml: "in this context"; PyYAML: "here"
            message += _colon_hint(text, mark.line)
        if "exceeded maximum nesting depth" in message:
            # PyYAML >= 6.0.3's scanner may stop a deep flow collection before
            # our own depth check sees it: one limit, one message.
            found = problem("document", f"nested more than {MAX_YAML_DEPTH} levels deep",
                            (mark.line + 1, mark.column + 1))
        else:
            found = problem("document", f"invalid YAML: {message}", (mark.line + 1, mark.column + 1))
    except yaml.reader.ReaderError as err:
        found = problem("document", f"invalid YAML: {err.reason}", _text_position(text, err.position))
    raise DefinitionError([found])


# `key: value` at the start of a line, the key after any `- ` of a list item
_LINE_KEY = re.compile(r"\s*(?:-\s+)*([^\s#:'\"{}\[\],&*!|>%@`-][^:]*?):\s")


def _colon_hint(text: str, line: int) -> str:
    """`run: echo a: b`: a plain value may not hold ': '. Say how to write it."""
    lines = text.splitlines()
    found = _LINE_KEY.match(lines[line]) if line < len(lines) else None
    key = found[1] if found else "run"
    return f"; quote the value or use `{key}: |`"


def _check_yaml_size(text: str) -> None:
    """Refuse, from the parser's event stream (one iterative pass), what the loader must not see.

    The constructor shares an aliased node's data rather than copying it,
    but everything after it (conversion, JSON encoding, the store, each
    worker) handles every copy on its own: `*a` costs what its anchor holds.
    An alias of a collection still open is a cycle, not a copy, and counts
    as one value; the composer refuses undefined and repeated anchors itself.
    Depth is not expanded: it guards the composer's recursion, which walks
    the written document, where an alias is a single node.
    """
    depth = chars = values = 0  # chars and values as if every alias were written out
    aliased = False
    anchors: dict[str, tuple[int, int]] = {}  # anchor -> (chars, values) of its node, expanded
    open_collections: list[tuple[str | None, int, int]] = []  # (anchor, chars, values) at its start
    for event in yaml.parse(text, Loader=_YamlLoader):
        if isinstance(event, yaml.ScalarEvent):
            chars += len(event.value)
            values += 1
            if event.anchor is not None:
                anchors[event.anchor] = (len(event.value), 1)
        elif isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            open_collections.append((event.anchor, chars, values))
            values += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
            anchor, chars_before, values_before = open_collections.pop()
            if anchor is not None:
                anchors[anchor] = (chars - chars_before, values - values_before)
            continue
        elif isinstance(event, yaml.AliasEvent):
            alias_chars, alias_values = anchors.get(event.anchor, (0, 1))
            chars += alias_chars
            values += alias_values
            aliased = True
        elif isinstance(event, yaml.DocumentStartEvent):
            anchors.clear()  # as the composer does: anchors are per document
            continue
        else:
            continue
        expanded = " once aliases are expanded" if aliased else ""
        if depth > MAX_YAML_DEPTH:
            message = f"nested more than {MAX_YAML_DEPTH} levels deep"
        elif values > MAX_YAML_VALUES:
            message = f"more than {MAX_YAML_VALUES} values{expanded}"
        elif chars > MAX_EXPANDED_CHARS:
            message = f"more than {MAX_EXPANDED_CHARS} characters of text{expanded} (limit for one document)"
        else:
            continue
        mark = event.start_mark
        raise DefinitionError([problem("document", message, (mark.line + 1, mark.column + 1))])


def _index_yaml(root: yaml.Node, problems: Problems, text: str) -> Positions:
    """Where each key and item sits, to position every problem; reports duplicate keys.

    PyYAML keeps the last of two equal keys without a word, which would
    silently drop a job; only the node tree still shows both.
    """
    positions = Positions(text)
    duplicates: list[tuple[int, Where, str, Position]] = []
    seen: set[int] = set()
    pending: list[tuple[Where, yaml.Node]] = [((), root)]
    while pending:
        where, node = pending.pop()
        if id(node) in seen:  # an alias: indexed where its anchor is
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            positions.scalars[where] = (node.start_mark.index, node.end_mark.index, node.style or "")
        elif isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], Position] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                child = where + (key_node.value,)
                mark = key_node.start_mark
                position = (mark.line + 1, mark.column + 1)
                identity = (key_node.tag, key_node.value)
                if identity in first:
                    message = f"duplicate key {key_node.value!r} (first at line {first[identity][0]})"
                    duplicates.append((mark.index, child, message, position))
                else:
                    first[identity] = positions[child] = position
                pending.append((child, value_node))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                mark = item.start_mark
                positions[where + (index,)] = (mark.line + 1, mark.column + 1)
                pending.append((where + (index,), item))
    for _, where, message, position in sorted(duplicates, key=lambda d: d[0]):
        problems.add(where, message, position)
    return positions
