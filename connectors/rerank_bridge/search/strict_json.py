"""Reading JSON strictly: a value of the wrong type (`"50"` for a number, `"yes"` for
a flag) or an unknown key is refused, and `validated` turns pydantic's refusal into
a RequestError naming the field's full path (`ext.rerank.documents[3].text`). The
settings, the request forms and every body the bridge reads go through here."""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from rerank_bridge.search.errors import RequestError

STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
ModelT = TypeVar("ModelT")


def _as_tuple(value: Any) -> Any:
    """JSON arrays arrive as lists; a single field name may come as a string."""
    if isinstance(value, str):
        return (value,)
    return tuple(value) if isinstance(value, list) else value


class StrictForm(BaseModel):
    """A JSON object read strictly, as the settings below are: the base of every request form."""

    model_config = STRICT


Names = Annotated[tuple[str, ...], BeforeValidator(_as_tuple)]
Vector = Annotated[tuple[float, ...], BeforeValidator(_as_tuple)]
PositiveInt = Annotated[int, Field(ge=1)]


def field_path(where: str, location: tuple[int | str, ...]) -> str:
    """`ext.rerank` + ("documents", 3, "text") -> `ext.rerank.documents[3].text`."""
    path = where
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


# pydantic names the member of a union it tried (`str`, `list[str]`, a class);
# field names here are lowercase identifiers, so those parts are told apart.
_UNION_MEMBER = re.compile(r"[A-Z].*|.*[\[\]()-].*|str|int|float|bool|none|__root__")


def _field_location(location: tuple[int | str, ...]) -> tuple[tuple[int | str, ...], str | None]:
    """The location without union-member parts, and the member it named (if any)."""
    kept, member = [], None
    for part in location:
        if isinstance(part, str) and _UNION_MEMBER.fullmatch(part):
            member = member or ("object" if part[0].isupper() else part)
        else:
            kept.append(part)
    return tuple(kept), member


def request_error(error: ValidationError, where: str) -> RequestError:
    """The first problem pydantic found, as a RequestError naming its field."""
    problems = error.errors()
    first = problems[0]
    location, member = _field_location(tuple(first["loc"]))
    # pydantic's wording, less its own vocabulary (class names, "Value error, ").
    message = re.sub(r" or instance of \w+|^Value error, ", "", first["msg"])
    if first["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
        message = "unknown setting"
    elif member is not None and first["type"].endswith("_type"):
        members = [m for e in problems if (m := _field_location(tuple(e["loc"])))[0] == location]
        expected = " or ".join(dict.fromkeys(str(m[1]) for m in members if m[1]))
        message = f"must be {expected}, got {first['input']!r}"
    elif first["type"] not in ("missing", "value_error"):
        message += f", got {first['input']!r}"
    return RequestError(field_path(where, location), message[:300])


def validated(model: type[ModelT], section: Any, where: str) -> ModelT:
    """`model` built from a JSON object (its keys as keyword arguments)."""
    if not isinstance(section, dict):
        raise RequestError(where, f"must be an object, got {type(section).__name__}")
    try:
        return model(**section)
    except ValidationError as error:
        raise request_error(error, where) from None
    except TypeError as error:  # a key that is not a valid Python identifier
        raise RequestError(where, str(error)) from None
