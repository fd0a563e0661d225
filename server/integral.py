"""Whole-number floats where an integer is declared.

JSON has one number type, and JSON Schema counts `30.0` as an integer; many
clients (JavaScript's above all) cannot tell `30` from `30.0` and may send
either. msgspec's strict decoding refuses a float for an `int` field, and
its lax mode would also take strings ("30"), which the description does not
allow. So a body refused for that is walked once along its wire type, and
only where the type wants an int does a float with no fraction become one.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import msgspec
import msgspec.inspect as mi


@lru_cache(maxsize=256)
def _info(type_: Any) -> mi.Type:
    return mi.type_info(type_)


def _wants_int(info: mi.Type) -> bool:
    if isinstance(info, mi.Metadata):
        return _wants_int(info.type)
    if isinstance(info, mi.IntType):
        return True
    if isinstance(info, mi.UnionType):
        members = [m.type if isinstance(m, mi.Metadata) else m for m in info.types]
        return any(isinstance(m, mi.IntType) for m in members) and not any(
            isinstance(m, mi.FloatType) for m in members)
    return False


def _walk(value: Any, info: mi.Type) -> tuple[Any, bool]:
    """(value with whole floats made ints where `info` wants an int, whether any changed)."""
    if isinstance(info, mi.Metadata):
        return _walk(value, info.type)
    if isinstance(value, float):
        if value.is_integer() and _wants_int(info):
            return int(value), True
        return value, False
    if isinstance(info, mi.UnionType):
        # The member a JSON object or array can only be (msgspec allows one of each).
        for member in info.types:
            inner = member.type if isinstance(member, mi.Metadata) else member
            if isinstance(value, dict) and isinstance(inner, (mi.StructType, mi.DictType)) or \
                    isinstance(value, list) and isinstance(inner, (mi.CollectionType, mi.TupleType)):
                return _walk(value, member)
        return value, False
    if isinstance(value, dict):
        if isinstance(info, mi.StructType):
            fields = {f.encode_name: f.type for f in info.fields}
            pairs = [(k, _walk(v, fields[k]) if k in fields else (v, False)) for k, v in value.items()]
        elif isinstance(info, mi.DictType):
            pairs = [(k, _walk(v, info.value_type)) for k, v in value.items()]
        else:
            return value, False
        return {k: v for k, (v, _) in pairs}, any(changed for _, (_, changed) in pairs)
    if isinstance(value, list):
        if isinstance(info, mi.CollectionType):
            items = [_walk(v, info.item_type) for v in value]
        elif isinstance(info, mi.TupleType) and len(info.item_types) == len(value):
            items = [_walk(v, t) for v, t in zip(value, info.item_types)]
        else:
            return value, False
        return [v for v, _ in items], any(changed for _, changed in items)
    return value, False


def whole_floats_as_ints(value: Any, type_: Any) -> tuple[Any, bool]:
    """`value` (decoded JSON) with every float that has no fraction made an
    int where `type_` declares an int; and whether anything changed."""
    return _walk(value, _info(type_))


def decode(body: bytes, type_: Any, refused: msgspec.ValidationError) -> Any:
    """`body` as `type_` once whole floats are ints; `refused` (the strict
    decoder's error) again when that changes nothing."""
    value, changed = whole_floats_as_ints(msgspec.json.decode(body), type_)
    if not changed:
        raise refused
    return msgspec.convert(value, type_)
