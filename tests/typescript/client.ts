// A small typed client, compiled with tsc --strict against @agent-events/types (tests/test_typescript_types.py).
import type {
  AgentStarted, AnyMessage, ClientMessage, ClientMessageType, ResumeRun, RunEvent, ServerMessage,
  ServerMessageType, StartRun,
} from "@agent-events/types";

export interface ToolCall { id: string; name: string; done: boolean }

export interface RunView {
  attempt: "primary" | "fallback";
  lastSeq: number;
  thoughts: string[];
  tools: ToolCall[];
  resumeToken?: string;
  outcome?: { success: boolean; fallbackUsed: boolean; message: string };
}

export function start(input: string, runId?: string): StartRun {
  const message: StartRun = { type: "start_run", input, options: { simulate_failure: "primary" } };
  if (runId !== undefined) message.run_id = runId;
  return message;
}

export function resume(runId: string, token: string, lastSeq: number): ResumeRun {
  return { type: "resume_run", run_id: runId, resume_token: token, last_seq: lastSeq };
}

function never(value: never): never {
  throw new Error(`unhandled message ${JSON.stringify(value)}`);
}

/** A reducer over a run's events: exhaustive, so a new event type in the schemas breaks the build here. */
export function reduce(view: RunView | undefined, event: RunEvent): RunView {
  const current: RunView = view ?? { attempt: "primary", lastSeq: -1, thoughts: [], tools: [] };
  const next: RunView = { ...current, lastSeq: event.seq };
  switch (event.type) {
    case "agent_started": {
      const started: AgentStarted = event;
      next.attempt = started.payload.attempt;
      if (started.payload.resume_token !== undefined) next.resumeToken = started.payload.resume_token;
      return next;
    }
    case "agent_thinking":
      next.thoughts = [...current.thoughts, event.payload.message];
      return next;
    case "tool_executing":
      next.tools = [...current.tools, { id: event.payload.tool_call_id, name: event.payload.tool_name, done: false }];
      return next;
    case "tool_completed":
      next.tools = current.tools.map((t) => (t.id === event.payload.tool_call_id ? { ...t, done: true } : t));
      return next;
    case "progress":
      return next;
    case "agent_completed": {
      const result = event.payload.result;
      next.outcome = { success: result.success, fallbackUsed: result.fallback_used, message: event.payload.message };
      return next;
    }
    default:
      return never(event);
  }
}

/** Everything a client receives: run events to the reducer, the rest handled by type. */
export function receive(runs: Map<string, RunView>, text: string): string | undefined {
  const msg = JSON.parse(text) as ServerMessage;
  switch (msg.type) {
    case "capabilities":
      return `server speaks ${msg.protocol_version}`;
    case "error":
      return `error ${msg.code}: ${msg.message}`;
    case "time_sync":
      return `offset ${msg.server_time_ms - msg.client_time_ms} ms`;
    default:
      runs.set(msg.run_id, reduce(runs.get(msg.run_id), msg));
      return undefined;
  }
}

const serverTypes: ServerMessageType[] = ["agent_started", "capabilities", "error", "time_sync"];
const clientTypes: ClientMessageType[] = ["start_run", "cancel_run", "time_sync", "resume_run"];
const cancel: ClientMessage = { type: "cancel_run", run_id: "r1" };
const any: AnyMessage[] = [cancel, start("hello")];
export const summary = [serverTypes.length, clientTypes.length, any.length];
