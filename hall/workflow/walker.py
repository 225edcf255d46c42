"""The engine's walk through a flow tree while one action is applied (see ``engine``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from hall.workflow.definitions import ApproverSpec, Flow, Node, choose_branch
from hall.workflow.state import (
    ActiveNode,
    ApplicationState,
    ApplicationStatus,
    ClosedTask,
    Context,
    Event,
    EventKind,
    Join,
    Notification,
    Outcome,
    Task,
    TaskStatus,
)


class Run:
    """A working copy of a state while one action is applied; ``outcome()`` freezes it."""

    def __init__(self, flow: Flow, state: ApplicationState, ctx: Context) -> None:
        self.flow = flow
        self.ctx = ctx
        self.applicant = state.applicant
        self.data = state.data
        self.chosen = state.chosen
        self.status = state.status
        self.active: dict[str, ActiveNode] = {a.node_id: a for a in state.active}
        self.joins: dict[str, tuple[str, ...]] = {j.node_id: j.done for j in state.joins}
        self.tasks: dict[int, Task] = {t.id: t for t in state.tasks}
        self.completed: list[str] = list(state.completed)
        self.last_approvers = state.last_approvers
        self.acted = state.acted
        self.next_task_id = state.next_task_id
        self.history = list(state.history)
        self.created: list[Task] = []
        self.closed: list[ClosedTask] = []
        self.notifications: list[Notification] = []
        self.events: list[Event] = []

    # -- bookkeeping

    def outcome(self) -> Outcome:
        """The frozen result."""
        state = ApplicationState(
            applicant=self.applicant,
            data=self.data,
            status=self.status,
            chosen=self.chosen,
            active=tuple(self.active.values()),
            joins=tuple(Join(k, tuple(sorted(v))) for k, v in self.joins.items()),
            tasks=tuple(sorted(self.tasks.values(), key=lambda t: t.id)),
            completed=tuple(self.completed),
            last_approvers=self.last_approvers,
            acted=self.acted,
            next_task_id=self.next_task_id,
            history=tuple(self.history),
        )
        # A task created and closed within one action never reached anyone's list.
        created_ids = {t.id for t in self.created}
        closed = tuple(c for c in self.closed if c.task.id not in created_ids)
        created = tuple(t for t in self.created if t.id in self.tasks)
        return Outcome(state, created, closed, tuple(self.notifications), tuple(self.events))

    def event(self, kind: EventKind, **fields: Any) -> None:
        """Append to the history."""
        seq = (self.history[-1].seq + 1) if self.history else 1
        ev = Event(seq=seq, kind=kind, at=self.ctx.at, **fields)
        self.history.append(ev)
        self.events.append(ev)

    def notify(self, kind: EventKind, recipient: str, node_id: str | None) -> None:
        """Queue a notification."""
        self.notifications.append(Notification(kind, recipient, node_id))

    def create_task(self, node_id: str, user: str, then: tuple[str, ...] = ()) -> Task:
        """Open a task for ``user`` (or their delegate while they are away)."""
        delegate = self.ctx.delegate_for(user)
        if delegate == self.applicant:
            delegate = None  # a delegate never approves their own application
        task = Task(
            id=self.next_task_id,
            node_id=node_id,
            assignee=delegate or user,
            on_behalf_of=user if delegate else None,
            then=then,
        )
        self.next_task_id += 1
        self.tasks[task.id] = task
        self.created.append(task)
        return task

    def close(self, task: Task, status: TaskStatus, opinion: str = "") -> None:
        """Close an open task."""
        del self.tasks[task.id]
        self.closed.append(ClosedTask(task, status, opinion))
        if status is not TaskStatus.CANCELLED:
            self.acted = True

    def cancel_where(self, keep: Callable[[Task], bool]) -> None:
        """Cancel every open task for which ``keep(task)`` is false."""
        for task in sorted(self.tasks.values(), key=lambda t: t.id):
            if not keep(task):
                self.close(task, TaskStatus.CANCELLED)

    def stop(self, status: ApplicationStatus) -> None:
        """End the round: cancel all open tasks and leave nothing active."""
        self.cancel_where(lambda t: False)
        self.active.clear()
        self.joins.clear()
        self.status = status
        if status is ApplicationStatus.RETURNED:
            self.completed.clear()

    # -- resolving people

    def resolve(self, node: Node, spec: ApproverSpec | None) -> list[str]:
        """The user ids a spec names, in order, without repeats."""
        if spec is None:
            return []
        users: list[str]
        if spec.type == "person":
            users = self.ctx.resolver.present(spec.users)
        elif spec.type == "role":
            users = self.ctx.resolver.users_with_role(spec.role, self.applicant)
        elif spec.type == "department_head":
            users = self.ctx.resolver.department_head(self.applicant)
        elif spec.type == "supervisor":
            users = self.ctx.resolver.supervisor(self.applicant, spec.level)
        elif spec.type == "form_field":
            value = self.data.get(spec.field)
            # Only a person field names people: a number or a date range names nobody.
            named = value if isinstance(value, list) else [value]
            users = self.ctx.resolver.present([v for v in named if isinstance(v, str)])
        else:
            users = self.ctx.resolver.present(self.chosen.get(node.id, ()))
        return list(dict.fromkeys(u for u in users if u))

    # -- walking the tree

    def run_from(self, container: str | None, branch: str | None, index: int) -> None:
        """Run the sequence from ``index`` until something waits for people or the flow ends."""
        seq = self.flow.sequence(container, branch)
        while index < len(seq):
            node = seq[index]
            if node.kind == "end":
                self.finish()
                return
            if node.kind == "cc":
                recipients = self.resolve(node, node.approver)
                for user in recipients:
                    self.notify(EventKind.CC, user, node.id)
                self.event(EventKind.CC, node_id=node.id, target=",".join(recipients) or None)
            elif node.kind == "condition":
                chosen = choose_branch(node, self.data)
                self.event(EventKind.BRANCH_CHOSEN, node_id=node.id, target=chosen.id)
                self.run_from(node.id, chosen.id, 0)
                return
            elif node.kind == "parallel":
                self.joins[node.id] = ()
                for b in node.branches:
                    # A branch may finish at once (everyone skipped); the last one continues.
                    if node.id in self.joins:
                        self.run_from(node.id, b.id, 0)
                return
            elif node.kind == "approver" and self.enter(node):
                return
            index += 1
        self.sequence_done(container, branch)

    def sequence_done(self, container: str | None, branch: str | None) -> None:
        """A branch (or the top level) ran out of nodes."""
        if container is None:
            self.finish()
            return
        node = self.flow.node(container)
        if node.kind == "parallel":
            done = set(self.joins.get(container, ())) | {branch or ""}
            if any(b.id not in done for b in node.branches):
                self.joins[container] = tuple(sorted(done))
                return
            self.joins.pop(container, None)
        self.run_after(container)

    def run_after(self, node_id: str) -> None:
        """Continue with whatever follows a node."""
        pos = self.flow.positions[node_id]
        self.run_from(pos.container, pos.branch, pos.index + 1)

    def enter(self, node: Node) -> bool:
        """Activate an approver node; False when it completed at once (skipped, 去重)."""
        # Nobody approves their own application: a department head applying, a role holder
        # or the fallback person applying, is left out, as if the node did not name them.
        users = [u for u in self.resolve(node, node.approver) if u != self.applicant]
        if not users:
            action = node.when_empty or self.flow.settings.when_empty
            named = node.fallback or self.flow.settings.fallback
            fallback = [u for u in self.ctx.resolver.present(named) if u != self.applicant]
            if action == "fallback" and fallback:
                users = list(dict.fromkeys(fallback))
                self.event(EventKind.FALLBACK_USED, node_id=node.id, target=",".join(users))
            else:
                # Never stall silently: the skip is in the history for everyone to see.
                self.event(EventKind.NODE_SKIPPED, node_id=node.id)
                return False
        auto_skip = (
            node.auto_skip
            if node.auto_skip is not None
            else (self.flow.settings.auto_skip_same_approver)
        )
        if auto_skip and self.last_approvers:
            repeated = [u for u in users if u in self.last_approvers]
            for user in repeated:
                self.event(EventKind.AUTO_APPROVED, node_id=node.id, actor=user)
            if repeated and (node.mode == "any" or len(repeated) == len(users)):
                self.complete(node.id, tuple(repeated))
                return False
            users = [u for u in users if u not in repeated]
        self.event(EventKind.NODE_ENTERED, node_id=node.id)
        if node.mode == "sequential":
            self.active[node.id] = ActiveNode(node.id, tuple(users[1:]))
            self.create_task(node.id, users[0])
        else:
            self.active[node.id] = ActiveNode(node.id)
            for user in users:
                self.create_task(node.id, user)
        return True

    def complete(self, node_id: str, approvers: tuple[str, ...]) -> None:
        """Record an approver node as approved in this round."""
        self.active.pop(node_id, None)
        if node_id in self.completed:
            self.completed.remove(node_id)
        self.completed.append(node_id)
        self.last_approvers = approvers

    def approve(self, task: Task, actor: str, opinion: str, signer_after: str | None) -> None:
        """Approve a task; move the node (and maybe the flow) on."""
        node = self.flow.node(task.node_id)
        self.close(task, TaskStatus.APPROVED, opinion)
        self.event(
            EventKind.APPROVED,
            actor=actor,
            node_id=node.id,
            opinion=opinion,
            on_behalf_of=task.on_behalf_of,
        )
        current = self.active[node.id]
        people = tuple(p for p in (task.assignee, task.on_behalf_of) if p)
        current = replace(current, approved_by=current.approved_by + people)
        if signer_after:
            self.event(EventKind.SIGNER_ADDED, actor=actor, node_id=node.id, target=signer_after)
        if task.then:
            # A signer added before has decided: the task goes back to who asked (who may
            # have been asked first by someone else, waiting after them).
            self.active[node.id] = current
            self.create_task(node.id, task.then[0], then=task.then[1:])
            if signer_after:
                self.active[node.id] = replace(current, queue=(signer_after, *current.queue))
            return
        if node.mode == "any":
            self.cancel_where(lambda t: t.node_id != node.id)
        if signer_after:
            if node.mode == "all":
                self.create_task(node.id, signer_after)
            else:
                current = replace(current, queue=(signer_after, *current.queue))
        self.active[node.id] = current
        if any(t.node_id == node.id for t in self.tasks.values()):
            return
        if current.queue:
            self.active[node.id] = replace(current, queue=current.queue[1:])
            self.create_task(node.id, current.queue[0])
            return
        self.complete(node.id, current.approved_by)
        self.run_after(node.id)

    def rewind(self, from_node: str, to_node: str) -> None:
        """Return from ``from_node`` to the earlier ``to_node`` and run it again.

        Everything between them on the shared sequence is undone: active nodes (including
        sibling branches of a parallel node being left) lose their tasks, joins are dropped;
        parallel nodes around ``to_node`` are re-entered with their other branches done.
        """
        here, there = self.flow.path(from_node), self.flow.path(to_node)
        level = next(i for i, (a, b) in enumerate(zip(there, here, strict=False)) if a != b)
        scope = here[:level]
        low, high = there[level][2], here[level][2]
        seq_key = there[level][:2]

        def inside(node_id: str) -> bool:
            path = self.flow.path(node_id)
            return (
                len(path) > level
                and path[:level] == scope
                and path[level][:2] == seq_key
                and low <= path[level][2] <= high
            )

        self.cancel_where(lambda t: not inside(t.node_id))
        for node_id in [n for n in self.active if inside(n)]:
            del self.active[node_id]
        for node_id in [n for n in self.joins if inside(n)]:
            del self.joins[node_id]
        # Re-open the parallel nodes that enclose the target below the shared level.
        kept: set[tuple[str | None, str | None]] = set()
        for container, branch, _ in there[level + 1 :]:
            assert container is not None
            parent = self.flow.node(container)
            if parent.kind == "parallel":
                done = tuple(sorted(b.id for b in parent.branches if b.id != branch))
                self.joins[container] = done
                kept |= {(container, b) for b in done}
        # Branches left done stay approved (and may still be returned to); the rest re-runs.
        self.completed = [
            n
            for n in self.completed
            if not inside(n) or any(step[:2] in kept for step in self.flow.path(n))
        ]
        # The returned-to node must decide again, never pass by 去重 on an earlier approval.
        self.last_approvers = ()
        pos = self.flow.positions[to_node]
        self.run_from(pos.container, pos.branch, pos.index)

    def finish(self) -> None:
        """The flow reached its end: approved."""
        self.status = ApplicationStatus.APPROVED
        self.active.clear()
        self.joins.clear()
        self.event(EventKind.FINISHED)
        self.notify(EventKind.FINISHED, self.applicant, None)
