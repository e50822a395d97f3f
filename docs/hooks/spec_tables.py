"""The normative tables of docs/spec.md, generated from the schemas and the rule registry and
committed into the file, so the spec read in the repository shows them.

Each table sits between two markers::

    <!-- agent-events:error-codes -->
    | code | sent when |
    ...
    <!-- /agent-events:error-codes -->

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

import docgen_events  # noqa: E402
import docgen_rules  # noqa: E402

SPEC = HERE.parent / "spec.md"
#: The command that regenerates the blocks, as the drift test tells it.
COMMAND = "python docs/hooks/spec_tables.py"
#: The blocks of the spec, in order: name -> generator(spec sections).
BLOCKS = {
    "error-codes": lambda sections: docgen_events.error_codes(),
    "envelope": lambda sections: docgen_events.envelope_table(),
    "event-payloads": lambda sections: docgen_events.event_payloads(),
    "rules": lambda sections: docgen_rules.rule_list(sections, "rules.md"),
}
#: An opening marker, then (optionally) the generated text and the closing marker.
BLOCK = re.compile(r"<!--\s*agent-events:(?P<name>[a-z0-9-]+)\s*-->\n"
                   r"(?:(?P<body>.*?)<!--\s*/agent-events:(?P=name)\s*-->\n?)?", re.S)


def render(markdown: str) -> str:
    """``markdown`` with every spec block (re)filled from the sources."""
    sections = docgen_rules.spec_sections(markdown)

    def fill(match: re.Match) -> str:
        name = match["name"]
        if name not in BLOCKS:
            return match[0]
        body = BLOCKS[name](sections).strip("\n")
        return f"<!-- agent-events:{name} -->\n{body}\n<!-- /agent-events:{name} -->\n"

    return BLOCK.sub(fill, markdown)


def strip(markdown: str) -> str:
    """``markdown`` without the generated blocks' bodies (the prose alone, as written)."""
    return BLOCK.sub(lambda m: f"<!-- agent-events:{m['name']} -->\n" if m["name"] in BLOCKS else m[0], markdown)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    current = SPEC.read_text(encoding="utf-8")
    fresh = render(current)
    if "--check" in args:
        if fresh != current:
            print(f"{SPEC}: the generated tables are out of date; run: {COMMAND}", file=sys.stderr)
            return 1
        return 0
    if fresh != current:
        SPEC.write_text(fresh, encoding="utf-8")
        print(f"{SPEC}: tables regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
