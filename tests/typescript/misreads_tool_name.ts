// The seed's bug: its front end read the tool name from the wrong place. This must NOT compile.
import type { ServerMessage } from "@agent-events/types";

export function toolName(msg: ServerMessage): string {
  if (msg.type === "tool_executing") {
    return msg.tool_name; // error TS2339: tool_name is in msg.payload
  }
  return "";
}
