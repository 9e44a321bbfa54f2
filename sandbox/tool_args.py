"""One wording for bad tool arguments, whether they came over MCP or `POST /api`.

fastmcp answers with pydantic's own text (several lines and a link to pydantic's site); the
JSON API checked names itself. Both now say `missing parameter(s) for TOOL: a, b`,
`unknown parameter(s) for TOOL: c` or `invalid parameter(s) for TOOL: d: <reason>`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import pydantic
import pydantic_core

#: Arguments the server supplies itself, never the caller.
INJECTED = frozenset({"ctx"})


def _parameters(function: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    signature = inspect.signature(function)
    return {n: p for n, p in signature.parameters.items() if n not in INJECTED}


def names_problem(tool: str, function: Callable[..., Any], params: Mapping[str, Any]) -> str | None:
    """Unknown or missing argument names, worded for people; None when the names fit."""
    parameters = _parameters(function)
    unknown = sorted(set(params) - set(parameters))
    if unknown:
        return f"unknown parameter(s) for {tool}: {', '.join(unknown)}"
    missing = sorted(
        n for n, p in parameters.items() if p.default is inspect.Parameter.empty and n not in params
    )
    if missing:
        return f"missing parameter(s) for {tool}: {', '.join(missing)}"
    return None


def validation_problem(tool: str, errors: list[pydantic_core.ErrorDetails]) -> str:
    """pydantic's error list as one line in the same wording (no links, no input echo)."""
    missing = sorted(str(e["loc"][-1]) for e in errors if e["type"].startswith("missing"))
    if missing:
        return f"missing parameter(s) for {tool}: {', '.join(missing)}"
    unknown = sorted(
        str(e["loc"][-1])
        for e in errors
        if e["type"] in ("unexpected_keyword_argument", "extra_forbidden")
    )
    if unknown:
        return f"unknown parameter(s) for {tool}: {', '.join(unknown)}"
    reasons = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg'][:1].lower()}{e['msg'][1:]}"
        for e in errors
    )
    return f"invalid parameter(s) for {tool}: {reasons}"


class InvalidArguments(ValueError):
    """Arguments that do not fit a tool's signature; the message is `validation_problem`'s."""


def validated(tool: str, function: Callable[..., Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments as the function's annotations make them, as fastmcp would pass them
    (`"5"` for an `int` becomes 5): the values that were checked are the ones used."""
    parameters = _parameters(function)
    fields: dict[str, Any] = {
        n: (
            Any if p.annotation is inspect.Parameter.empty else p.annotation,
            ... if p.default is inspect.Parameter.empty else p.default,
        )
        for n, p in parameters.items()
    }
    model = pydantic.create_model(f"{tool}_arguments", **fields)
    try:
        checked = model.model_validate(dict(params))
    except pydantic.ValidationError as exc:
        raise InvalidArguments(validation_problem(tool, exc.errors())) from None
    return {name: getattr(checked, name) for name in params}


def problem_of(exc: BaseException, tool: str) -> str | None:
    """Our wording for a fastmcp/pydantic argument validation error, else None."""
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, pydantic.ValidationError):
            return validation_problem(tool, current.errors())
        current = current.__cause__ or current.__context__
    return None
