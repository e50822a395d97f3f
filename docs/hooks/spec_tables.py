"""The generated blocks committed into docs pages, so the pages read in the repository show them:
docs/spec.md's normative tables (from the schemas and the rule registry) and docs/capacity.md's
figures and worked example (from one recorded benchmark run, ``docgen_capacity``).

Each table sits between two markers::

    <!-- agent-events:error-codes -->
    | code | sent when |
    ...
    <!-- /agent-events:error-codes -->

(a block may take one argument, ``<!-- agent-events:capacity-figures benchmarks/results/X.json -->``).
``python docs/hooks/spec_tables.py`` rewrites the blocks from the sources;
``--check`` only says whether they are current (exit 1 if not). The test
suite runs the check (tests/test_spec.py), and the mkdocs hook regenerates
the blocks at build time, so the site never shows a stale table.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # run as a script or imported from the tests
    sys.path.insert(0, str(HERE))

import docgen_capacity  # noqa: E402
import docgen_events  # noqa: E402
import docgen_rules  # noqa: E402

SPEC = HERE.parent / "spec.md"
CAPACITY = HERE.parent / "capacity.md"
#: The command that regenerates the blocks, as the drift test tells it.
COMMAND = "python docs/hooks/spec_tables.py"
#: The blocks of the spec: name -> generator(argument, spec sections).
BLOCKS = {
    "error-codes": lambda _arg, sections: docgen_events.error_codes(),
    "envelope": lambda _arg, sections: docgen_events.envelope_table(),
    "event-payloads": lambda _arg, sections: docgen_events.event_payloads(),
    "rules": lambda _arg, sections: docgen_rules.rule_list(sections, "rules.md"),
}
#: The blocks of the capacity page, each from the recorded run its argument names.
CAPACITY_BLOCKS = {name: (lambda arg, _sections, make=make: make(arg))
                   for name, make in docgen_capacity.GENERATORS.items()}
#: Every page with committed blocks, and its blocks.
PAGES = {SPEC: BLOCKS, CAPACITY: CAPACITY_BLOCKS}
#: An opening marker (with its argument, if any), then (optionally) the generated text and the closing marker.
BLOCK = re.compile(r"<!--\s*agent-events:(?P<name>[a-z0-9-]+)(?:\s+(?P<arg>[^\s>]+))?\s*-->\n"
                   r"(?:(?P<body>.*?)<!--\s*/agent-events:(?P=name)\s*-->\n?)?", re.S)


def _opening(match: re.Match) -> str:
    arg = f" {match['arg']}" if match["arg"] else ""
    return f"<!-- agent-events:{match['name']}{arg} -->\n"


def render(markdown: str, blocks: dict = BLOCKS) -> str:
    """``markdown`` with every one of ``blocks`` (re)filled from the sources (the spec's by default)."""
    sections = docgen_rules.spec_sections(markdown)

    def fill(match: re.Match) -> str:
        name = match["name"]
        if name not in blocks:
            return match[0]
        body = blocks[name](match["arg"], sections).strip("\n")
        return f"{_opening(match)}{body}\n<!-- /agent-events:{name} -->\n"

    return BLOCK.sub(fill, markdown)


def strip(markdown: str, blocks: dict = BLOCKS) -> str:
    """``markdown`` without the generated blocks' bodies (the prose alone, as written)."""
    return BLOCK.sub(lambda m: _opening(m) if m["name"] in blocks else m[0], markdown)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    stale = 0
    for page, blocks in PAGES.items():
        current = page.read_text(encoding="utf-8")
        fresh = render(current, blocks)
        if fresh == current:
            continue
        if "--check" in args:
            print(f"{page}: the generated blocks are out of date; run: {COMMAND}", file=sys.stderr)
            stale += 1
        else:
            page.write_text(fresh, encoding="utf-8")
            print(f"{page}: blocks regenerated")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
