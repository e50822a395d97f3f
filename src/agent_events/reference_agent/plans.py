"""Action plans: what the ActionsAgent produces, and how it reads them from a model.

The seed's ActionPlanBuilder lives here: turning a request into goals, a
model's answer into a plan (salvaging what it can when the answer is not clean
JSON, which is what ``has_partial_extraction`` reports), and the default plan
the fallback path falls back on. Pure functions, no I/O, so they are easy to
reuse in a custom agent.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import orjson

#: Bounds that keep one run's events small whatever the request or model says.
MAX_GOALS = 6
MAX_STEPS = 50
MAX_TITLE = 200
MAX_RATIONALE = 500


class PlanParseError(ValueError):
    """The model's answer contains no usable action plan."""


@dataclass(frozen=True, slots=True)
class PlanStep:
    title: str
    rationale: str = ""

    def as_payload(self) -> dict:
        return {"title": self.title, "rationale": self.rationale}


@dataclass(frozen=True, slots=True)
class ActionPlan:
    steps: tuple[PlanStep, ...]
    #: True when the steps were salvaged from an answer that was not clean JSON.
    partial: bool = False

    def as_payload(self) -> dict:
        return {"steps": [step.as_payload() for step in self.steps]}


# -- reading the request ---------------------------------------------------
#
# The request is client input (up to the server's message size limit), so
# every step here is linear in its length. Backtracking regexes are quadratic
# on long whitespace runs (a ``\s+`` tried at each position of the run), so
# the text is squeezed first, by two substitutions whose matches always start
# at the beginning of a run: after them every whitespace run is one character
# and the clause patterns never meet a long one.

_BLANKS = re.compile(r"[^\S\n]+")          # whitespace runs without a line break -> " "
_LINE_BREAKS = re.compile(r"\s*\n\s*")     # whitespace runs holding one -> "\n" (a clause break)
_CLAUSE_SPLIT = re.compile(r"[.;!?\n]+|,\s*(?:and\s+)?|\s+and\s+(?=(?:also\s+)?[a-z]+\s)", re.IGNORECASE)
#: The lead-ins at the start of a clause ("please create a plan to", "also", ...), as many
#: as there are, in one match (stripping one at a time would copy the clause each time).
_LEAD_INS = re.compile(
    r"(?:(?:please\s+|kindly\s+)?(?:(?:create|build|make|give me|write|draft)\s+(?:an?\s+)?(?:action\s+)?plan\s+(?:to|for)\s+"
    r"|(?:i|we)\s+(?:want|need|would like)\s+to\s+|help\s+(?:me|us)\s+(?:to\s+)?|(?:also|then)\s+))+",
    re.IGNORECASE,
)
#: Requests up to this long are cached (the agent and the offline model read the same one);
#: longer ones are rare and would pin large strings in the cache.
_CACHED_REQUEST = 4096
#: Goals are read from the first ``GOAL_WINDOW`` characters of a request, and from
#: ``MAX_CLAUSES`` clauses at most: a request at the size limit costs what a short one does.
GOAL_WINDOW = 8192
MAX_CLAUSES = 256


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] or text[:limit]
    return cut.rstrip(",;: ") + "..."


def squeeze_whitespace(text: str) -> str:
    """``text`` with each whitespace run replaced by one character: a line break if it held one, else a space."""
    return _LINE_BREAKS.sub("\n", _BLANKS.sub(" ", text))


def _without_lead_ins(clause: str) -> str:
    match = _LEAD_INS.match(clause)
    return clause if match is None else clause[match.end():]


def _extract_goals(request: str) -> tuple[str, ...]:
    goals: list[str] = []
    seen: set[str] = set()
    for number, clause in enumerate(_clauses(squeeze_whitespace(request[:GOAL_WINDOW]))):
        if number == MAX_CLAUSES:
            break
        clause = _without_lead_ins(clause.strip(" "))
        if " " not in clause:
            continue
        key = clause.lower()
        if key in seen:
            continue
        seen.add(key)
        goals.append(_clip(clause[0].upper() + clause[1:], MAX_TITLE))
        if len(goals) == MAX_GOALS:
            break
    return tuple(goals)


def _clauses(text: str):
    """The clauses of a squeezed request, lazily (``re.split`` would build all of them)."""
    start = 0
    for match in _CLAUSE_SPLIT.finditer(text):
        yield text[start:match.start()]
        start = match.end()
    yield text[start:]


_extract_goals_cached = functools.lru_cache(maxsize=256)(_extract_goals)


def extract_goals(request: str) -> tuple[str, ...]:
    """The distinct goals a request states, in order, at most ``MAX_GOALS``.

    Read from the request's first ``GOAL_WINDOW`` characters, in time linear
    in their number whatever they hold. Cached for requests up
    to a few KiB: the agent and the offline model both read the same request.
    """
    if len(request) <= _CACHED_REQUEST:
        return _extract_goals_cached(request)
    return _extract_goals(request)


extract_goals.cache_clear = _extract_goals_cached.cache_clear  # type: ignore[attr-defined]


_THEMES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("cost", "spend", "budget", "price", "bill", "saving"),
     "Spending is measurable, so savings can be verified against the baseline."),
    (("latency", "performance", "speed", "slow", "fast", "throughput"),
     "Users feel latency directly; compare p95 before and after each change."),
    (("reliab", "uptime", "outage", "error", "incident", "availability"),
     "Fewer incidents protect user trust; track the error budget as changes land."),
    (("secur", "vulnerab", "auth", "complian", "risk", "privacy"),
     "Closing exposure early is cheaper than responding to an incident."),
    (("user", "customer", "onboard", "retention", "churn", "engagement", "conversion"),
     "Customer outcomes are the point; instrument the funnel to see the effect."),
    (("data", "report", "analytic", "metric", "dashboard", "insight"),
     "Decisions need trustworthy numbers; agree on the definitions first."),
)


def _rationale(goal: str) -> str:
    lowered = goal.lower()
    for keywords, rationale in _THEMES:
        if any(word in lowered for word in keywords):
            return rationale
    return "It addresses a goal stated in the request directly."


def plan_for_request(request: str) -> ActionPlan:
    """The plan a competent planner would propose: baseline, one step per goal, review."""
    goals = extract_goals(request)
    subject = ", ".join(goal[0].lower() + goal[1:] for goal in goals[:3]) or "the current situation"
    baseline = f"Record where things stand today ({subject}) so every later step can be judged against it."
    steps = [PlanStep("Establish a baseline", _clip(baseline, MAX_RATIONALE))]
    if goals:
        steps.extend(PlanStep(goal, _rationale(goal)) for goal in goals)
    else:
        steps.append(PlanStep("Clarify the objective with the stakeholders",
                              "The request states no concrete goal; agree on one before spending effort."))
    steps.append(PlanStep("Review results and adjust the plan",
                          "A plan is a hypothesis: compare outcomes with the baseline and iterate."))
    return ActionPlan(tuple(steps))


def default_action_plan(request: str) -> ActionPlan:
    """The fallback plan: generic, needs no model, always succeeds for any request."""
    goals = extract_goals(request)
    focus = goals[0] if goals else "the stated objective"
    return ActionPlan((
        PlanStep("Assess the current state", _clip(f"Understand where things stand on {focus.lower()}.", MAX_RATIONALE)),
        PlanStep("Prioritise the highest-impact opportunities", "Effort is limited; start where the payoff is largest."),
        PlanStep("Implement changes incrementally", "Small steps keep risk low and make effects attributable."),
        PlanStep("Monitor results and iterate", "Measurement tells whether the plan works and what to do next."),
    ))


# -- reading the model's answer ----------------------------------------------

_LIST_ITEM = re.compile(r"^[ \t]*(?:\d+[.)]|[-*\u2022])[ \t]+(?P<body>\S.*)$", re.MULTILINE)
#: A model may echo the request, so its answer is client input too: ``(?<!\s)`` starts the
#: match only at the first character of a whitespace run, which keeps the search linear.
_ITEM_SPLIT = re.compile(r"(?<!\s)\s+(?:-|\u2013|\u2014)\s+|:\s+")


def _steps_from_json(value: object) -> tuple[PlanStep, ...] | None:
    raw = value.get("steps") if isinstance(value, dict) else value if isinstance(value, list) else None
    if not isinstance(raw, list):
        return None
    steps = []
    for item in raw[:MAX_STEPS]:
        if isinstance(item, str) and item.strip():
            steps.append(PlanStep(_clip(item.strip(), MAX_TITLE)))
        elif isinstance(item, dict) and isinstance(item.get("title"), str) and item["title"].strip():
            rationale = item.get("rationale")
            steps.append(PlanStep(_clip(item["title"].strip(), MAX_TITLE),
                                  _clip(rationale.strip(), MAX_RATIONALE) if isinstance(rationale, str) else ""))
        else:
            return None
    return tuple(steps) or None


def parse_plan(answer: str) -> ActionPlan:
    """Read a plan from a model's answer; raise :class:`PlanParseError` when there is none.

    Clean JSON (``{"steps": [{"title", "rationale"}, ...]}``) is the contract.
    Models break contracts, so a JSON object embedded in prose and a numbered
    or bulleted list are salvaged too; those plans are marked ``partial``,
    which the run's result reports as ``has_partial_extraction``.
    """
    try:
        steps = _steps_from_json(orjson.loads(answer))
    except orjson.JSONDecodeError:
        steps = None
    else:
        if steps is None:
            raise PlanParseError("the model answered JSON without a list of steps with titles")
        return ActionPlan(steps)
    start, end = answer.find("{"), answer.rfind("}")
    if 0 <= start < end:
        try:
            steps = _steps_from_json(orjson.loads(answer[start:end + 1]))
        except orjson.JSONDecodeError:
            steps = None
        if steps:
            return ActionPlan(steps, partial=True)
    items = []
    for match in _LIST_ITEM.finditer(answer):
        title, _, rationale = (part.strip() for part in _partition(match["body"].strip()))
        items.append(PlanStep(_clip(title, MAX_TITLE), _clip(rationale, MAX_RATIONALE)))
        if len(items) == MAX_STEPS:
            break
    if items:
        return ActionPlan(tuple(items), partial=True)
    raise PlanParseError("the model's answer contains no action plan (neither JSON steps nor a list)")


def _partition(body: str) -> tuple[str, str, str]:
    match = _ITEM_SPLIT.search(body)
    if match is None:
        return body, "", ""
    return body[:match.start()], match.group(), body[match.end():]
