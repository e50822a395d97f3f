"""A custom agent in a few lines: subclass BaseAgent, get a conforming stream.

    python examples/custom_agent.py "Count the words in this request"

It serves the agent on a free port, starts one run against it with a plain
WebSocket client and prints the events. No envelope, seq or socket code in
the agent: BaseAgent and its bridge do that.
"""

from __future__ import annotations

import asyncio
import json
import sys

from websockets.asyncio.client import connect

from agent_events.reference_agent import BaseAgent, RunRequest, serve


class WordCountAgent(BaseAgent):
    """Counts the words of the request with one tool."""

    name = "WordCountAgent"

    async def execute(self, request: RunRequest) -> None:
        await self.emit_agent_started("Counting the words of your request")
        await self.emit_thinking("Splitting the request on whitespace")
        async with self.tool("word_counter", "Counting words", arguments={"chars": len(request.input)}) as call:
            words = len(request.input.split())
            call.done(f"Counted {words} words", words=words)
        await self.emit_agent_completed(f"Your request has {words} words",
                                        {"success": True, "steps_generated": 1, "words": words})


async def demo(text: str) -> list[dict]:
    async with serve(port=0, agent_factory=WordCountAgent) as server:
        async with connect(server.url, subprotocols=["agent-events.v1"]) as ws:
            await ws.send(json.dumps({"type": "start_run", "run_id": "demo", "input": text}))
            events: list[dict] = []
            while not events or events[-1]["type"] != "agent_completed":
                message = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
                if message.get("run_id") == "demo":  # the run's events (not the 1.1 capabilities message)
                    events.append(message)
    return events


if __name__ == "__main__":
    for event in asyncio.run(demo(" ".join(sys.argv[1:]) or "Count the words in this request")):
        print(event["seq"], event["type"], "-", event["payload"]["message"])
