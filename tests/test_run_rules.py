"""The run-rule table is one for both sides: BaseAgent refuses exactly the rows the checker flags.

:mod:`agent_events.run_rules` is the table; the checker reports a row that names a rule, and
``BaseAgent.emit_*`` refuses it. The walk below puts a real BaseAgent (on a real bridge, whose
frames are kept) in every state it can be in and tries every kind: it must refuse exactly the rows
that name a rule, and what it accepts, the checker must not flag.
"""

from __future__ import annotations

import asyncio
import ast
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_events import run_rules as rr
from agent_events.conformance.core import rules
from agent_events.conformance.core.checker import Checker
from agent_events.reference_agent import AgentUsageError, BaseAgent
from agent_events.reference_agent.bridge import WebSocketBridgeAdapter


class _Socket:
    """What the bridge writes to: it keeps every frame."""

    def __init__(self) -> None:
        self.frames: list[dict] = []

    async def send(self, data, text=True) -> None:
        self.frames.append(orjson.loads(data))


class _Agent(BaseAgent):
    name = "WalkAgent"


def _agent() -> tuple[_Agent, _Socket]:
    socket = _Socket()
    agent = _Agent()
    agent.set_websocket_bridge(WebSocketBridgeAdapter(socket), "walk")
    return agent, socket


async def _into(agent: BaseAgent, state: str) -> None:
    """Drive ``agent`` into ``state`` by conforming calls only."""
    if state == rr.AWAITING_START:
        return
    await agent.emit_agent_started("start")
    await agent.emit_thinking("think")
    if state == rr.FALLBACK:
        await agent.emit_agent_started("fall back", attempt="fallback")
        await agent.emit_thinking("think again")
    elif state == rr.COMPLETED:
        await agent.emit_agent_completed("done")


async def _emit(agent: BaseAgent, kind: str) -> None:
    """Emit one event of ``kind`` (a tool_completed needs an open call: opened first where allowed)."""
    if kind == rr.STARTED_PRIMARY:
        await agent.emit_agent_started("again", attempt="primary")
    elif kind == rr.STARTED_FALLBACK:
        await agent.emit_agent_started("fallback", attempt="fallback")
    elif kind == rr.THINKING:
        await agent.emit_thinking("thinking")
    elif kind == rr.TOOL_EXECUTING:
        await agent.emit_tool_executing("search", "searching")
    elif kind == rr.TOOL_COMPLETED:
        call_id = "call_x"
        if agent.state == rr.PRIMARY:
            call_id = await agent.emit_tool_executing("search", "searching")
        await agent.emit_tool_completed(call_id, "searched")
    elif kind == rr.PROGRESS:
        await agent.emit_progress("halfway", percent=50)
    elif kind == rr.COMPLETED_EVENT:
        await agent.emit_agent_completed("done")
    else:  # a kind the schemas added: BaseAgent needs an emit for it, and this walk a branch
        pytest.fail(f"no emit_* for kind {kind!r}")


AGENT_STATES = (rr.AWAITING_START, rr.PRIMARY, rr.FALLBACK, rr.COMPLETED)
ROWS = [(state, kind) for state in AGENT_STATES for kind in rr.KINDS if kind != rr.CLOSE]


@pytest.mark.parametrize("state,kind", ROWS, ids=[f"{s}-{k}" for s, k in ROWS])
def test_base_agent_refuses_exactly_the_rows_that_name_a_rule(state, kind):
    async def walk():
        agent, socket = _agent()
        await _into(agent, state)
        assert agent.state == state
        before = len(socket.frames)
        try:
            await _emit(agent, kind)
        except AgentUsageError as exc:
            return str(exc), socket.frames[before:], socket.frames
        return None, socket.frames[before:], socket.frames

    refused, sent, frames = asyncio.run(walk())
    rule_id = rr.TRANSITIONS[state, kind][1]
    if rule_id is None:
        assert refused is None, f"({state}, {kind}) names no rule, but BaseAgent refused: {refused}"
        # ... and what it sent, the checker does not flag (the run is left open: only close rules may)
        checker = Checker("generic")
        for frame in frames:
            checker.receive(frame)
        assert not checker.violations, [(v.rule_id, v.observed) for v in checker.violations]
    else:
        assert refused is not None, f"({state}, {kind}) breaks {rule_id}, but BaseAgent sent it: {sent}"
        assert f"[{rule_id}]" in refused
        assert [f["type"] for f in sent] in ([], ["tool_executing"]), sent  # nothing of the refused kind went out


def test_an_agent_is_never_headless():
    """Only rows that name a rule lead into ``headless``: an agent refused them never gets there."""
    into = [(s, k) for (s, k), (nxt, rule) in rr.TRANSITIONS.items() if nxt == rr.HEADLESS and s != rr.HEADLESS]
    assert into and all(rr.TRANSITIONS[row][1] is not None for row in into)


def test_base_agent_refuses_to_end_an_attempt_with_a_tool_open():
    async def walk(then):
        agent, _ = _agent()
        await agent.emit_agent_started("start")
        await agent.emit_thinking("think")
        await agent.emit_tool_executing("search", "searching")
        with pytest.raises(AgentUsageError, match=r"tools still open .*\[pair\.tool_matched\]"):
            await then(agent)

    asyncio.run(walk(lambda a: a.emit_agent_started("fallback", attempt="fallback")))
    asyncio.run(walk(lambda a: a.emit_agent_completed("done")))


def test_base_agent_never_uses_a_tool_call_id_twice():
    """pair.unique_id: an id is used once per run, so the checker's rule holds for what BaseAgent sends."""
    async def walk():
        agent, socket = _agent()
        await agent.emit_agent_started("start")
        await agent.emit_thinking("think")
        first = await agent.emit_tool_executing("search", "searching", tool_call_id="call_2")
        await agent.emit_tool_completed(first, "done")
        with pytest.raises(AgentUsageError, match=r"\[pair\.unique_id\]"):
            await agent.emit_tool_executing("search", "again", tool_call_id="call_2")
        a = await agent.emit_tool_executing("search", "one")
        await agent.emit_tool_completed(a, "done")
        b = await agent.emit_tool_executing("search", "two")  # would be call_2: skipped
        await agent.emit_tool_completed(b, "done")
        await agent.emit_agent_completed("done")
        return socket.frames, (a, b)

    frames, ids = asyncio.run(walk())
    assert "call_2" not in ids and len(set(ids)) == 2
    checker = Checker("generic")
    for frame in frames:
        checker.receive(frame)
    checker.close()
    assert not checker.violations, [(v.rule_id, v.observed) for v in checker.violations]


def test_the_table_is_total_and_names_only_registry_rules():
    assert all((s, k) in rr.TRANSITIONS for s in rr.STATES for k in rr.KINDS)
    assert rr.V1.rule_ids <= set(rules.BY_ID)
    for (state, kind), (_, rule_id) in rr.TRANSITIONS.items():
        if rule_id is not None:
            expected, observed = rr.explain(rule_id, state, kind)
            assert expected and observed and "{" not in expected + observed


def test_a_dialect_is_rows_added_to_a_value():
    """A family and a positional scoping are data: a dialect value is built, not coded."""
    text = rr.Family(name="text_message", opens=("TEXT_MESSAGE_START",), continues=("TEXT_MESSAGE_CONTENT",),
                     closes=("TEXT_MESSAGE_END",), key=("messageId",), closed_by=rr.RUN_END,
                     breaches=rr.Breaches(orphan="pair.no_orphan", unclosed="pair.tool_matched"))
    seed_tools = rr.Family(name="seed_tools", opens=(rr.TOOL_EXECUTING,), closes=(rr.TOOL_COMPLETED,),
                           key=rr.BY_NAME_IN_ORDER, name_path=("payload", "tool_name"), unique=False)
    kinds = ("TEXT_MESSAGE_START", "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_END")
    rows = {(s, k): (s, None) for s in rr.STATES for k in kinds}
    dialect = rr.V1.with_transitions(rows, kinds=kinds, name="ag-ui-ish").with_families(text)
    assert dialect.family_of("TEXT_MESSAGE_CONTENT") is text and dialect.family("tool_call") is rr.TOOL_CALL
    assert text.key_of({"messageId": "m1"}) == "m1" and seed_tools.key_of({"payload": {}}) is None
    assert seed_tools.by_name_in_order and rr.V1.family_of(rr.THINKING) is None
    positional = rr.Scoping("positional", begin=("RUN_STARTED",), end=("RUN_FINISHED", "RUN_ERROR"))
    assert positional.key is None
    with pytest.raises(ValueError, match="total"):
        rr.V1.with_transitions({}, kinds=("NEW_KIND",))
    with pytest.raises(ValueError, match="kinds not in the table"):
        rr.V1.with_families(text)


_PARTS = st.sampled_from(["payload", "tool_call_id", "tool_name", "messageId", "0"])
_LEAVES = st.none() | st.booleans() | st.integers() | st.text(max_size=3)
_VALUES = st.recursive(_LEAVES, lambda inner: st.lists(inner, max_size=2)
                       | st.dictionaries(_PARTS, inner, max_size=3), max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(message=_VALUES, path=st.none() | st.lists(_PARTS, max_size=3).map(tuple))
def test_a_family_path_getter_walks_the_path_as_at_does(message, path):
    """The getters a family makes once (issue 26: one call per lookup) agree with the plain walk on
    any value, dict or not, for paths of every length the families use and one longer."""
    expected = None if path is None else rr._at(message, path)
    assert rr.path_getter(path)(message) == expected
    family = rr.Family(name="f", opens=("o",), closes=("c",), key=path if path is not None else rr.BY_NAME_IN_ORDER,
                       name_path=path)
    assert family.key_of(message) == expected and family.name_of(message) == expected


def test_a_family_getters_follow_replace_copy_and_pickle_and_stay_out_of_equality():
    """``dataclasses.replace``, ``copy`` and ``pickle`` make the getters anew from the paths (a family
    pickles as it did before it had them); they take no part in ``==`` or ``repr``."""
    from dataclasses import replace
    moved = replace(rr.TOOL_CALL, key=("payload", "call"), name_path=None)
    message = {"payload": {"call": "c1", "tool_call_id": "t1", "tool_name": "search"}}
    assert rr.TOOL_CALL.key_of(message) == "t1" and rr.TOOL_CALL.name_of(message) == "search"
    assert moved.key_of(message) == "c1" and moved.name_of(message) is None
    assert replace(rr.TOOL_CALL) == rr.TOOL_CALL and hash(replace(rr.TOOL_CALL)) == hash(rr.TOOL_CALL)
    assert "key_of" not in repr(rr.TOOL_CALL)
    import copy
    import pickle
    for again in (pickle.loads(pickle.dumps(rr.TOOL_CALL)), copy.copy(rr.TOOL_CALL), copy.deepcopy(moved)):
        original = moved if again.key == moved.key else rr.TOOL_CALL
        assert again == original and again.key_of(message) == original.key_of(message)
        assert again.name_of(message) == original.name_of(message)


def test_run_rules_is_floor_one():
    """It imports only the standard library and agent_events.schemas (both sides import it)."""
    tree = ast.parse(Path(rr.__file__).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module + ("." + node.names[0].name if node.module == "agent_events" else ""))
    ours = {m for m in imported if m.startswith("agent_events")}
    assert ours == {"agent_events.schemas"}, ours
