"""Read keys from TypedDict, pydantic and dataclass states alike."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reliable_graph.errors import MissingStateKeyError

_MISSING = object()


def _get(state: Any, key: str) -> Any:
    if type(state) is dict or isinstance(state, Mapping):
        return state.get(key, _MISSING)
    return getattr(state, key, _MISSING)


def read(state: Any, key: str, *, node: str) -> Any:
    """`state[key]`, or a `MissingStateKeyError` naming the key and the node."""
    value = _get(state, key)
    if value is _MISSING:
        raise MissingStateKeyError(node=node, key=key)
    return value


def read_optional(state: Any, key: str, default: Any = None) -> Any:
    """`state[key]`, or `default` when the state has no such key."""
    if type(state) is dict:
        return state.get(key, default)
    value = _get(state, key)
    return default if value is _MISSING else value


def as_mapping(state: Any) -> Mapping[str, Any]:
    """A read-only mapping view of any state object, for evaluators."""
    if type(state) is dict or isinstance(state, Mapping):
        return state
    dump = getattr(state, "model_dump", None)
    if callable(dump):
        return {k: getattr(state, k) for k in type(state).model_fields}
    fields = getattr(state, "__dataclass_fields__", None)
    if fields is not None:
        return {k: getattr(state, k) for k in fields}
    return dict(vars(state))
