"""Exit codes of every agent-events command, documented in the CLI reference.

CI systems gate on these, so they never change meaning.
"""

from enum import IntEnum


class ExitCode(IntEnum):
    #: Conformant: every MUST rule passed (with --strict, every SHOULD too).
    OK = 0
    #: Not conformant: at least one failure at the gating severity.
    NOT_CONFORMANT = 1
    #: Usage or configuration error: bad flags, unreadable file, unknown rule id.
    USAGE = 2
    #: Could not connect, or the WebSocket handshake failed (live mode).
    CONNECT = 3
    #: Internal error: a bug in agent-events. The message says how to report it.
    INTERNAL = 4
