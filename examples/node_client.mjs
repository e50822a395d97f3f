// A client that is not Python: start one run against an agent-events server
// and print every frame it receives, one per line, exactly as received.
//
//   agent-events serve --port 8765 &
//   node --experimental-websocket examples/node_client.mjs ws://127.0.0.1:8765/ "Reduce cloud costs" [--fallback]
//
// Node 22+ has a global WebSocket; Node 20-21 need --experimental-websocket.
// Exit codes: 0 the run completed, 1 connection error, 2 usage or timeout.

if (typeof WebSocket === "undefined") {
  console.error("no global WebSocket: use Node 22+, or node --experimental-websocket on Node 20-21");
  process.exit(2);
}
const args = process.argv.slice(2);
const fallback = args.includes("--fallback");
const [url, input = "Create an action plan to reduce cloud costs and improve API latency"] =
  args.filter((a) => !a.startsWith("--"));
if (!url) {
  console.error("usage: node_client.mjs URL [REQUEST] [--fallback]");
  process.exit(2);
}

const runId = `node-${process.pid}`;
const timer = setTimeout(() => { console.error("timed out waiting for agent_completed"); process.exit(2); }, 15000);
const ws = new WebSocket(url, ["agent-events.v1"]);

ws.addEventListener("open", () => {
  console.error(`connected, subprotocol ${JSON.stringify(ws.protocol)}`);
  const start = { type: "start_run", run_id: runId, input };
  if (fallback) start.options = { simulate_failure: "primary" };
  ws.send(JSON.stringify(start));
});

ws.addEventListener("message", (event) => {
  const message = JSON.parse(event.data);
  if (message.type === "capabilities") {
    // protocol 1.1: what the server implements (a 1.0 client would simply ignore this type)
    const features = Object.entries(message.features).filter(([, on]) => on).map(([name]) => name);
    console.error(`server speaks protocol ${message.protocol_version}: ${features.join(", ")}`);
    return;
  }
  console.log(event.data);
  if (message.type === "agent_completed" && message.run_id === runId) {
    clearTimeout(timer);
    ws.close(1000, "done");
  }
});

ws.addEventListener("close", (event) => {
  console.error(`closed ${event.code} ${event.reason}`);
  process.exit(event.code === 1000 ? 0 : 1);
});

ws.addEventListener("error", () => {
  console.error(`could not talk to ${url}`);
  process.exit(1);
});
