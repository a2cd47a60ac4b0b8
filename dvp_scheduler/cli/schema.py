"""``dvp-scheduler schema``: write the published event schemas."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from contracts.schema import asyncapi_document, event_json_schemas

ASYNCAPI_FILE = "asyncapi.json"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "schema",
        help="write the JSON Schema of every event and the AsyncAPI document of the subjects",
        description="Generate the event contract from the code: one JSON Schema per event "
        "(<type>.schema.json) and an AsyncAPI 3 document (asyncapi.json). With --output, "
        "files are written there (both formats unless --format says one); without, the "
        "chosen format (default asyncapi) is printed.",
    )
    parser.add_argument("--format", choices=["jsonschema", "asyncapi"], help="only this format")
    parser.add_argument("--output", type=Path, metavar="DIR", help="directory to write into")
    parser.set_defaults(handler=_run)


def render(document: Any) -> str:
    """The canonical text of a generated document (stable key order, trailing newline)."""
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def schema_files(fmt: str | None = None) -> dict[str, str]:
    """File name -> content of the generated schema files."""
    files: dict[str, str] = {}
    if fmt in (None, "jsonschema"):
        for tag, schema in event_json_schemas().items():
            files[f"{tag}.schema.json"] = render(schema)
    if fmt in (None, "asyncapi"):
        files[ASYNCAPI_FILE] = render(asyncapi_document())
    return files


def _run(args: argparse.Namespace) -> int:
    if args.output is None:
        if args.format == "jsonschema":
            sys.stdout.write(render(event_json_schemas()))
        else:
            sys.stdout.write(render(asyncapi_document()))
        return 0
    args.output.mkdir(parents=True, exist_ok=True)
    for name, content in schema_files(args.format).items():
        (args.output / name).write_text(content)
        print(args.output / name)
    return 0
