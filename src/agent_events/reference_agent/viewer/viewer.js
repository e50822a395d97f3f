// agent-events live viewer: a small, complete browser client of protocol v1.
//
// It is also the readable example of a correct browser client:
//   * one WebSocket to the server that served this page, offering the subprotocol
//     agent-events.v1; a token, when the server wants one, goes in the `token` query
//     parameter (a browser cannot set an Authorization header on a WebSocket);
//   * time_sync first: a few round trips give the offset between this browser's clock
//     and the server's (NTP style: the sample with the shortest round trip wins), so
//     that delivery latency = receive time - emitted_at is right across machines;
//   * every run has a client-chosen run_id, and every event is routed by its run_id,
//     so several runs in flight on one connection never mix;
//   * each run's seq must rise by exactly 1; unknown message types and unknown fields
//     are ignored (the protocol is open), never an error;
//   * everything the server sent is shown with textContent, never parsed as HTML.
"use strict";

(() => {
  const SUBPROTOCOL = "agent-events.v1";
  const SYNC_SAMPLES = 5;
  const $ = (id) => document.getElementById(id);
  const now = () => performance.timeOrigin + performance.now(); // epoch ms, sub-millisecond

  const runs = new Map(); // run_id -> run view state
  let ws = null;
  let runNumber = 0;
  const session = Math.random().toString(36).slice(2, 8);
  const clock = { offset: 0, delay: Infinity, samples: 0, pending: new Map() };

  // -- connection -------------------------------------------------------------

  function socketUrl() {
    const url = new URL("/", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const token = new URLSearchParams(location.search).get("token");
    if (token) url.searchParams.set("token", token);
    return url.href;
  }

  function connect() {
    setStatus("connecting", "connecting\u2026");
    $("reconnect").hidden = true;
    ws = new WebSocket(socketUrl(), [SUBPROTOCOL]);
    ws.addEventListener("open", () => {
      setStatus("open", "connected" + (ws.protocol ? " (" + ws.protocol + ")" : ""));
      $("run").disabled = false;
      syncClock();
    });
    ws.addEventListener("message", (event) => onFrame(event.data, now()));
    ws.addEventListener("close", (event) => {
      $("run").disabled = true;
      $("reconnect").hidden = false;
      const why = event.code === 1006 ? "could not connect (wrong token? server down?)" : (event.reason || "code " + event.code);
      setStatus("closed", "disconnected: " + why);
      log("closed: code " + event.code + (event.reason ? ", " + event.reason : ""));
      for (const run of runs.values()) {
        if (run.state === "running") finish(run, "lost", "connection lost");
      }
    });
  }

  function send(message) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(message));
    return true;
  }

  function setStatus(state, text) {
    const el = $("status");
    el.dataset.state = state;
    el.className = "badge " + ({ open: "ok", closed: "err" }[state] || "idle");
    el.textContent = text;
  }

  function log(text) {
    const li = document.createElement("li");
    li.textContent = new Date().toLocaleTimeString() + "  " + text;
    $("log").append(li);
  }

  // -- clock offset (time_sync) ---------------------------------------------------

  function syncClock() {
    for (let i = 0; i < SYNC_SAMPLES; i++) {
      setTimeout(() => {
        const t = now();
        clock.pending.set(t, true);
        send({ type: "time_sync", client_time_ms: t });
      }, i * 40);
    }
  }

  function onTimeSync(message, receivedAt) {
    const sentAt = message.client_time_ms;
    if (!clock.pending.delete(sentAt) || typeof message.server_time_ms !== "number") return;
    const delay = receivedAt - sentAt;
    clock.samples += 1;
    if (delay < clock.delay) {
      clock.delay = delay;
      clock.offset = message.server_time_ms - (sentAt + receivedAt) / 2; // server minus client
    }
    $("clock").textContent = "clock offset " + signed(clock.offset) + " ms \u00b1 " + (clock.delay / 2).toFixed(2)
      + " ms (best of " + clock.samples + " time_sync)";
  }

  // -- messages ---------------------------------------------------------------------

  function onFrame(data, receivedAt) {
    let message;
    try {
      message = JSON.parse(data);
    } catch (e) {
      log("not JSON: " + String(data).slice(0, 120));
      return;
    }
    if (message === null || typeof message !== "object" || Array.isArray(message)) {
      log("not a JSON object: " + String(data).slice(0, 120));
      return;
    }
    if (message.type === "time_sync") return onTimeSync(message, receivedAt);
    const run = typeof message.run_id === "string" ? runs.get(message.run_id) : undefined;
    if (message.type === "error") {
      log("error " + message.code + ": " + message.message);
      if (run && run.state === "running" && run.next === 0) finish(run, "error", message.code + ": " + message.message);
      return;
    }
    if (!run) {
      log("event for a run this page did not start: " + String(message.type) + " " + String(message.run_id));
      return;
    }
    onEvent(run, message, receivedAt);
  }

  function onEvent(run, m, receivedAt) {
    const p = m.payload && typeof m.payload === "object" ? m.payload : {};
    const latency = typeof m.emitted_at === "number" ? receivedAt + clock.offset - m.emitted_at : null;
    rawRow(run, m, latency);
    if (m.seq !== run.next) feed(run, "warn", "seq " + m.seq + " where " + run.next + " was expected");
    run.next = typeof m.seq === "number" ? m.seq + 1 : run.next + 1;

    switch (m.type) {
      case "agent_started": {
        const attempt = p.attempt || "primary";
        run.attempt = attempt;
        const chip = document.createElement("span");
        chip.className = "chip " + attempt;
        chip.textContent = attempt;
        run.el.querySelector(".attempts").append(chip);
        feed(run, "started " + attempt, (attempt === "fallback" ? "\u21bb " : "\u25b6 ") + (p.message || "started"));
        break;
      }
      case "agent_thinking":
        feed(run, "thinking", p.message || "thinking\u2026");
        break;
      case "tool_executing":
        toolRow(run, p, m.emitted_at);
        break;
      case "tool_completed":
        toolDone(run, p, m.emitted_at);
        break;
      case "progress":
        progress(run, p);
        break;
      case "agent_completed":
        completed(run, p);
        break;
      default: // an event type this client does not know: shown raw only, as the protocol asks
        break;
    }
  }

  // -- the chat view --------------------------------------------------------------------

  function feed(run, kind, text) {
    const li = document.createElement("li");
    li.className = kind;
    li.textContent = text;
    run.el.querySelector(".feed").append(li);
    return li;
  }

  function toolRow(run, p, emittedAt) {
    const li = document.createElement("li");
    li.className = "tool";
    li.dataset.tool = String(p.tool_name);
    li.dataset.status = "running";
    const status = document.createElement("span");
    status.className = "tstatus";
    status.textContent = "running";
    const name = document.createElement("code");
    name.textContent = String(p.tool_name);
    const text = document.createElement("span");
    text.className = "tmsg";
    text.textContent = p.message || "";
    const ms = document.createElement("span");
    ms.className = "tms mut";
    li.append(status, name, text, ms);
    run.el.querySelector(".feed").append(li);
    run.tools.set(String(p.tool_call_id), { li, emittedAt });
  }

  function toolDone(run, p, emittedAt) {
    const tool = run.tools.get(String(p.tool_call_id));
    if (!tool) {
      feed(run, "warn", "tool_completed for a call that never started: " + p.tool_call_id);
      return;
    }
    const ok = p.status !== "error";
    tool.li.dataset.status = ok ? "done" : "error";
    tool.li.querySelector(".tstatus").textContent = ok ? "done" : "error";
    if (p.message) tool.li.querySelector(".tmsg").textContent = p.message;
    const ms = typeof p.duration_ms === "number" ? p.duration_ms
      : (typeof emittedAt === "number" && typeof tool.emittedAt === "number" ? emittedAt - tool.emittedAt : null);
    if (ms !== null) tool.li.querySelector(".tms").textContent = fmt(ms) + " ms";
  }

  function progress(run, p) {
    const box = run.el.querySelector(".progress");
    box.hidden = false;
    const pct = typeof p.percent === "number" ? Math.max(0, Math.min(100, p.percent)) : null;
    box.querySelector(".bar").style.width = (pct === null ? 100 : pct) + "%";
    box.querySelector(".pct").textContent = (pct === null ? "" : pct.toFixed(0) + "% ") + (p.message || "");
  }

  function completed(run, p) {
    const result = p.result && typeof p.result === "object" ? p.result : {};
    const answer = run.el.querySelector(".answer");
    answer.hidden = false;
    answer.querySelector(".summary").textContent = p.message || (result.success ? "done" : "failed");
    const steps = result.action_plan && Array.isArray(result.action_plan.steps) ? result.action_plan.steps : [];
    const plan = answer.querySelector(".plan");
    for (const step of steps) {
      const li = document.createElement("li");
      const title = document.createElement("b");
      title.textContent = step && step.title ? step.title : String(step);
      li.append(title);
      if (step && step.rationale) {
        const why = document.createElement("span");
        why.textContent = " \u2014 " + step.rationale;
        li.append(why);
      }
      plan.append(li);
    }
    const meta = [];
    if (result.fallback_used) meta.push("fallback used");
    if (result.cancelled) meta.push("cancelled");
    if (typeof result.execution_time_ms === "number") meta.push("agent time " + fmt(result.execution_time_ms) + " ms");
    if (result.error) meta.push("error: " + (typeof result.error === "string" ? result.error : JSON.stringify(result.error)));
    answer.querySelector(".meta").textContent = meta.join(" \u00b7 ");
    const state = result.cancelled ? "cancelled" : result.success === false ? "failed" : "completed";
    finish(run, state, state);
  }

  function finish(run, state, text) {
    run.state = state;
    run.el.dataset.state = state;
    const badge = run.el.querySelector(".state");
    badge.className = "state badge " + ({ completed: "ok", cancelled: "idle" }[state] || "err");
    badge.textContent = text;
    run.el.querySelector(".cancel").hidden = true;
    run.el.querySelector(".elapsed").textContent = fmt(now() - run.sentAt) + " ms";
    for (const tool of run.tools.values()) {
      if (tool.li.dataset.status === "running") {
        tool.li.dataset.status = "error";
        tool.li.querySelector(".tstatus").textContent = "never completed";
      }
    }
  }

  // -- the raw view ---------------------------------------------------------------------

  function rawRow(run, m, latency) {
    const tr = document.createElement("tr");
    tr.dataset.type = String(m.type);
    const cells = [m.seq === undefined ? "" : String(m.seq), String(m.type), latency === null ? "-" : fmt(latency)];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      td.textContent = text;
      if (i !== 1) td.className = "num";
      tr.append(td);
    });
    tr.title = JSON.stringify(m);
    run.el.querySelector(".raw tbody").append(tr);
  }

  // -- starting runs ----------------------------------------------------------------------

  function startRun(input, simulateFailure) {
    runNumber += 1;
    const runId = "viewer-" + session + "-" + runNumber;
    const el = $("run-tpl").content.firstElementChild.cloneNode(true);
    el.dataset.runId = runId;
    el.querySelector(".run-id").textContent = runId;
    el.querySelector(".user").textContent = input + (simulateFailure ? "  (primary failure simulated)" : "");
    const run = { id: runId, el, next: 0, state: "running", tools: new Map(), sentAt: now(), attempt: null };
    el.querySelector(".cancel").addEventListener("click", () => {
      if (run.state === "running") send({ type: "cancel_run", run_id: runId });
    });
    runs.set(runId, run);
    $("runs").prepend(el);
    const message = { type: "start_run", run_id: runId, input };
    if (simulateFailure) message.options = { simulate_failure: "primary" };
    if (!send(message)) finish(run, "lost", "not connected");
  }

  function fmt(ms) {
    return Math.abs(ms) >= 10 ? ms.toFixed(1) : ms.toFixed(2);
  }

  function signed(ms) {
    return (ms >= 0 ? "+" : "") + ms.toFixed(2);
  }

  $("ask").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("input").value.trim();
    if (input) startRun(input, $("fail").checked);
  });
  $("reconnect").addEventListener("click", connect);
  connect();
})();
