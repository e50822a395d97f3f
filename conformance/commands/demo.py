"""``agent-events demo``: start the reference agent and check it (coming with the live check)."""

HELP = "start the reference agent on a free port and check it"


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    print("agent-events demo: coming soon - it needs the reference agent and the live check. "
          "Try `agent-events schema` meanwhile.")
    return 0
