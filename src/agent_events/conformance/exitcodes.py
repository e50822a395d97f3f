"""Exit codes of every agent-events command, documented in the CLI reference.

CI systems gate on these, so they never change meaning.
"""

from enum import IntEnum


class ExitCode(IntEnum):
    #: Passed the gate: by default, conformant (every MUST rule passed); with --strict or --fail-on warning, every SHOULD too; and no more warnings than --max-warnings. With --fail-on none or a MUST rule lowered, a non-conformant stream passes too, and the verdict says NOT CONFORMANT.
    OK = 0
    #: Not conformant: a violation of a rule whose severity reaches --fail-on (default error: the MUST rules; --rule and --off change a rule's severity), or more warnings than --max-warnings.
    NOT_CONFORMANT = 1
    #: Usage or configuration error: bad flags, unreadable file, unknown rule id, a MUST rule lowered without --allow-lowering-must.
    USAGE = 2
    #: Could not connect, or the WebSocket handshake failed (live mode).
    CONNECT = 3
    #: Internal error: a bug in agent-events. The message says how to report it.
    INTERNAL = 4
