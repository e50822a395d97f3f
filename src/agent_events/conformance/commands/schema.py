"""``agent-events schema``: print or export the protocol's JSON Schemas."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from agent_events import schemas
from agent_events.conformance.exitcodes import ExitCode

HELP = "print or export the JSON Schemas of protocol v1"
DESCRIPTION = (
    "With no argument, list the schemas. With NAME, print that schema. With --out DIR, "
    "write every schema to DIR as NAME.json (their $ids are absolute; resolve the relative "
    "$refs by $id, never over the network)."
)


def add_arguments(parser) -> None:
    parser.add_argument("name", nargs="?", metavar="NAME", help="a schema to print, e.g. agent_completed or server_message")
    parser.add_argument("--out", metavar="DIR", type=Path, help="write every schema into DIR")
    parser.add_argument("--asyncapi", action="store_true", help="print (or with --out, also write) the AsyncAPI 3.0 document of the protocol")


def export(out: Path) -> list[Path]:
    """Write every schema into ``out`` and return the written paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in schemas.all_schemas().items():
        path = out / f"{name}.json"
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written


def run(args) -> int:
    from agent_events.conformance.cli import UsageError

    if args.name and (args.out or args.asyncapi):
        raise UsageError("NAME prints one schema; it does not go with --out or --asyncapi (which write them all)")
    if args.asyncapi:
        from agent_events.conformance.tooling import asyncapi

        document = asyncapi.build()
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "asyncapi.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        else:
            json.dump(document, sys.stdout, indent=2)
            sys.stdout.write("\n")
            return ExitCode.OK
    if args.out:
        try:
            written = export(args.out)
        except OSError as exc:
            raise UsageError(f"cannot write schemas to {args.out}: {exc.strerror or exc}") from None
        print(f"wrote {len(written)} schemas to {args.out}")
        return ExitCode.OK
    if args.name:
        try:
            schema = schemas.load(args.name)
        except KeyError:
            raise UsageError(f"no schema named {args.name!r}; known: {', '.join(schemas.schema_names())}") from None
        json.dump(schema, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return ExitCode.OK
    width = max(map(len, schemas.schema_names()))
    for name, schema in schemas.all_schemas().items():
        print(f"{name:<{width}}  {schema.get('title', '')}")
    return ExitCode.OK
