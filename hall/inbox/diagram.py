"""The flow diagram (流程) of an application, laid out on the server and drawn as SVG.

The flow tree is measured bottom-up (a sequence stacks its nodes; a parallel or condition node
puts its branches side by side) and then placed top-down. Each node gets a state from the
application's stored state and history: ``done``, ``current``, ``future``, ``skipped`` (a
condition branch not taken) or ``stopped`` (where it was returned or terminated). The template
draws the boxes and lines; no diagram library, no script.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hall.workflow import engine
from hall.workflow.definitions import Flow, Node

BOX_W = 176
BOX_H = 44
GAP = 26
COL_GAP = 18
LABEL_H = 22
EMPTY_W = 96
MARGIN = 12

DONE, CURRENT, FUTURE, SKIPPED, STOPPED = "done", "current", "future", "skipped", "stopped"

#: Presentation attributes per state (SVG attributes, not inline CSS: the CSP allows them).
COLOURS: Mapping[str, tuple[str, str, str]] = {
    # fill, stroke, text
    DONE: ("#e6f4ea", "#1e8e3e", "#0d652d"),
    CURRENT: ("#e8f0fe", "#1a73e8", "#174ea6"),
    FUTURE: ("#ffffff", "#9aa0a6", "#3c4043"),
    SKIPPED: ("#f1f3f4", "#dadce0", "#80868b"),
    STOPPED: ("#fce8e6", "#d93025", "#a50e0e"),
}


@dataclass(frozen=True)
class Box:
    """One node drawn as a rounded rectangle."""

    node_id: str
    x: float
    y: float
    label: str
    sub: str
    state: str
    kind: str
    w: float = BOX_W
    h: float = BOX_H

    @property
    def colours(self) -> tuple[str, str, str]:
        """Fill, stroke and text colour of the state."""
        return COLOURS[self.state]


@dataclass(frozen=True)
class Label:
    """A branch name above its column."""

    x: float
    y: float
    text: str
    state: str


@dataclass(frozen=True)
class Line:
    """A connector, as a polyline's points."""

    points: str
    state: str


@dataclass
class Diagram:
    """Everything the template draws, and the size of the drawing."""

    width: float = 0
    height: float = 0
    boxes: list[Box] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)

    def state_of(self, node_id: str) -> str | None:
        """The drawn state of one node (for tests and the text list)."""
        return next((b.state for b in self.boxes if b.node_id == node_id), None)


# --------------------------------------------------------------------------- states


@dataclass
class _States:
    """Node states worked out from the application's state and history."""

    done: set[str]
    current: set[str]
    stopped: set[str]
    chosen: dict[str, str]
    approved: bool


def _states(flow: Flow, state: engine.ApplicationState) -> _States:
    """Which nodes are done, current and stopped in the application's latest round."""
    round_events: list[engine.Event] = []
    for event in state.history:
        if event.kind in (engine.EventKind.SUBMITTED, engine.EventKind.RESUBMITTED):
            round_events = []
        round_events.append(event)
    done = set(state.completed)
    chosen: dict[str, str] = {}
    stopped: set[str] = set()
    for event in round_events:
        if (
            event.kind
            in (
                engine.EventKind.NODE_SKIPPED,
                engine.EventKind.AUTO_APPROVED,
                engine.EventKind.CC,
            )
            and event.node_id
        ):
            done.add(event.node_id)
        elif event.kind is engine.EventKind.BRANCH_CHOSEN and event.node_id and event.target:
            chosen[event.node_id] = event.target
        elif (
            event.kind in (engine.EventKind.TERMINATED, engine.EventKind.RETURNED)
            and event.node_id
            and state.status
            in (engine.ApplicationStatus.TERMINATED, engine.ApplicationStatus.RETURNED)
        ):
            stopped = {event.node_id}
    current = {a.node_id for a in state.active}
    # A node returned to (退回) is approved again later: it is current or future, not done.
    done -= current
    return _States(
        done=done,
        current=current,
        stopped=stopped,
        chosen=chosen,
        approved=state.status is engine.ApplicationStatus.APPROVED,
    )


def _node_state(node: Node, s: _States, skipped: bool, descendants: list[str]) -> str:
    if skipped:
        return SKIPPED
    if node.id in s.stopped:
        return STOPPED
    if node.kind == "start":
        return DONE
    if node.kind == "end":
        return DONE if s.approved else FUTURE
    if node.kind in ("parallel", "condition"):
        if any(d in s.current for d in descendants):
            return CURRENT
        if s.approved or node.id in s.chosen or any(d in s.done for d in descendants):
            return DONE
        return FUTURE
    if node.id in s.current:
        return CURRENT
    if node.id in s.done or s.approved:
        return DONE
    return FUTURE


# --------------------------------------------------------------------------- layout


def _measure_seq(nodes: tuple[Node, ...]) -> tuple[float, float]:
    if not nodes:
        return EMPTY_W, 0
    sizes = [_measure(n) for n in nodes]
    return max(w for w, _h in sizes), sum(h for _w, h in sizes) + GAP * (len(sizes) - 1)


def _measure(node: Node) -> tuple[float, float]:
    if node.kind not in ("parallel", "condition"):
        return BOX_W, BOX_H
    sizes = [_measure_seq(b.nodes) for b in node.branches]
    width = sum(w for w, _h in sizes) + COL_GAP * (len(sizes) - 1)
    height = BOX_H + GAP + LABEL_H + max(h for _w, h in sizes) + GAP
    return max(width, BOX_W), height


def _descendants(node: Node) -> list[str]:
    found: list[str] = []
    for branch in node.branches:
        for child in branch.nodes:
            found.append(child.id)
            found.extend(_descendants(child))
    return found


class _Painter:
    def __init__(self, flow: Flow, states: _States, names: Mapping[str, str]) -> None:
        self.flow = flow
        self.s = states
        self.names = names
        self.d = Diagram()

    def seq(self, nodes: tuple[Node, ...], cx: float, y: float, skipped: bool) -> float:
        """Place a sequence centred on ``cx`` from ``y``; returns the y below it."""
        previous_bottom: float | None = None
        previous_state = FUTURE
        for node in nodes:
            if previous_bottom is not None:
                self.line([(cx, previous_bottom), (cx, y)], previous_state)
            bottom, previous_state = self.node(node, cx, y, skipped)
            previous_bottom = bottom
            y = bottom + GAP
        return previous_bottom if previous_bottom is not None else y - GAP

    def node(self, node: Node, cx: float, y: float, skipped: bool) -> tuple[float, str]:
        """Place one node; returns its bottom and its state."""
        descendants = _descendants(node)
        state = _node_state(node, self.s, skipped, descendants)
        self.d.boxes.append(
            Box(node.id, cx - BOX_W / 2, y, node.name or node.id, self.sub(node), state, node.kind)
        )
        if node.kind not in ("parallel", "condition"):
            return y + BOX_H, state
        sizes = [_measure_seq(b.nodes) for b in node.branches]
        total = sum(w for w, _h in sizes) + COL_GAP * (len(sizes) - 1)
        left = cx - total / 2
        fork_y = y + BOX_H + GAP / 2
        label_y = y + BOX_H + GAP
        top = label_y + LABEL_H
        inner_h = max(h for _w, h in sizes)
        join_y = top + inner_h + GAP / 2
        centres: list[float] = []
        self.line([(cx, y + BOX_H), (cx, fork_y)], state)
        for branch, (w, _h) in zip(node.branches, sizes, strict=True):
            bx = left + w / 2
            centres.append(bx)
            taken = node.kind != "condition" or self.s.chosen.get(node.id) == branch.id
            not_taken = node.kind == "condition" and node.id in self.s.chosen and not taken
            branch_skipped = skipped or not_taken
            if branch_skipped:
                branch_state = SKIPPED
            elif node.kind == "condition" and node.id in self.s.chosen:
                branch_state = DONE
            else:
                branch_state = state if state != DONE or self.s.approved else FUTURE
                if any(n.id in self.s.done for n in branch.nodes) or self.s.approved:
                    branch_state = DONE
            self.line([(bx, fork_y), (bx, label_y)], branch_state)
            self.d.labels.append(
                Label(bx, label_y + LABEL_H / 2 + 4, self.branch_name(node, branch), branch_state)
            )
            bottom = self.seq(branch.nodes, bx, top, branch_skipped)
            last = branch.nodes[-1].id if branch.nodes else None
            end_state = branch_state
            if last is not None:
                end_state = self.d.state_of(last) or branch_state
                end_state = DONE if end_state == DONE else (SKIPPED if branch_skipped else FUTURE)
            self.line([(bx, bottom if branch.nodes else top), (bx, join_y)], end_state)
            left += w + COL_GAP
        self.line([(centres[0], fork_y), (centres[-1], fork_y)], state)
        self.line([(centres[0], join_y), (centres[-1], join_y)], state)
        after = y + _measure(node)[1]
        self.line([(cx, join_y), (cx, after)], state)
        return after, state

    def branch_name(self, node: Node, branch: Any) -> str:
        name = branch.name or branch.id
        if node.kind == "condition" and self.s.chosen.get(node.id) == branch.id:
            return f"✓ {name}"
        return str(name)

    def sub(self, node: Node) -> str:
        return self.names.get(node.id, "")

    def line(self, points: list[tuple[float, float]], state: str) -> None:
        self.d.lines.append(Line(" ".join(f"{x:g},{y:g}" for x, y in points), state))


def build_diagram(
    flow: Flow, state: engine.ApplicationState, subtitles: Mapping[str, str] | None = None
) -> Diagram:
    """The laid-out diagram of ``flow`` for an application in ``state``.

    ``subtitles`` adds a second line per node (e.g. who holds the task now).
    """
    painter = _Painter(flow, _states(flow, state), subtitles or {})
    width, height = _measure_seq(flow.nodes)
    painter.seq(flow.nodes, MARGIN + width / 2, MARGIN, False)
    painter.d.width = width + 2 * MARGIN
    painter.d.height = height + 2 * MARGIN
    return painter.d
