"""Command-line flags derived from the services' settings models, so that a default, its help
text and its environment variable are written once, on the model's field."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar, get_args

from pydantic import ValidationError
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from dvp_scheduler.errors import SettingsError

S = TypeVar("S", bound=BaseSettings)


def environment_variable(model: type[BaseSettings], field: str) -> str:
    """The variable ``model`` reads ``field`` from (``DVP_EXECUTOR_CONCURRENCY``)."""
    return f"{model.model_config.get('env_prefix', '')}{field}".upper()


def add_setting(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    model: type[BaseSettings],
    field: str,
    flag: str,
    *,
    metavar: str | None = None,
    convert: Callable[[str], Any] | None = None,
    shown_default: str | None = None,
    dest: str | None = None,
) -> None:
    """Add ``flag`` for ``model.field``: its help is the field's description, its default the
    environment variable's value if set, else the field's default; ``dest`` is the field name
    unless given.

    A boolean field gets a switch that sets it to the opposite of its default (``--no-mirror``).
    """
    info = model.model_fields[field]
    variable = environment_variable(model, field)
    raw = os.environ.get(variable)
    default = info.default if info.default is not PydanticUndefined else None
    shown = shown_default if shown_default is not None else _shown(default)
    help_text = f"{info.description or field} (default {shown}; {variable})"
    if isinstance(default, bool):
        parser.add_argument(
            flag,
            dest=dest or field,
            action="store_false" if default else "store_true",
            # Set in the environment: left to the model, which reads and checks the variable.
            default=default if raw is None else None,
            help=help_text,
        )
        return
    parser.add_argument(
        flag,
        dest=dest or field,
        type=convert or _converter(info.annotation),
        # A string default goes through ``type`` too: a bad variable is a usage error that
        # names the value.
        default=raw if raw is not None else default,
        metavar=metavar or field.upper(),
        help=help_text,
    )


def settings_from_arguments(
    model: type[S],
    args: argparse.Namespace,
    flags: Mapping[str, str],
    **fixed: Any,
) -> S:
    """``model`` built from the flags given (``flags``: field name to flag), ``fixed`` values
    and, for the rest, the environment and the field defaults; a value the model refuses is a
    `SettingsError` naming the flag and the value."""
    given = {
        field: getattr(args, field) for field in flags if getattr(args, field, None) is not None
    }
    try:
        return model(**given, **fixed)
    except ValidationError as error:
        problems = []
        for problem in error.errors():
            field = str(problem["loc"][0]) if problem["loc"] else ""
            where = flags[field] if field in given else environment_variable(model, field)
            problems.append(f"{where} {problem.get('input')!r}: {problem['msg']}")
        raise SettingsError("; ".join(problems)) from None


def _converter(annotation: Any) -> Callable[[str], Any]:
    kinds = [kind for kind in (annotation, *get_args(annotation)) if kind in (int, float, Path)]
    return kinds[0] if kinds else str


def _shown(default: object) -> str:
    if default is None:
        return "none"
    if isinstance(default, float):
        return f"{default:g}"
    return str(default)
