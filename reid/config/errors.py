"""A user-facing error type and readable pydantic validation messages."""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from reid.errors import ConfigError

__all__ = ["ConfigError", "format_validation_error"]


def _section_model(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The pydantic class that owns the key at `loc` (for listing its allowed keys)."""
    current: type[BaseModel] | None = model
    for part in loc[:-1]:
        if current is None or not isinstance(part, str) or part not in current.model_fields:
            return None
        annotation = current.model_fields[part].annotation
        current = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return current


def _did_you_mean(key: str, allowed: list[str]) -> str:
    """" (did you mean 'seq_len'?)" for a near miss of an allowed key (a typo, a missing underscore), else ""."""
    import difflib

    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.75)
    return f" (did you mean '{close[0]}'?)" if close else ""


def format_validation_error(err: ValidationError, model: type[BaseModel], prefix: str = "") -> str:
    """Turn a pydantic error into lines like `data.seq_len: expected an integer, got 'abc'`."""
    lines = []
    for item in err.errors():
        loc = tuple(item["loc"])
        key = prefix + ".".join(str(p) for p in loc)
        if item["type"] == "extra_forbidden":
            owner = _section_model(model, loc)
            allowed = sorted(owner.model_fields) if owner is not None else []
            lines.append(f"unknown key '{key}'{_did_you_mean(str(loc[-1]), allowed)}; allowed keys here: "
                         f"{', '.join(allowed)}")
        else:
            lines.append(f"{key}: {item['msg']} (got {item.get('input')!r})")
    return "\n".join(lines)
