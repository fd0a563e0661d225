"""The jobs as a graph: duplicate ids, unknown and self needs, cycles."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection

from .problems import Problems, Where, field


@dataclasses.dataclass
class Job:
    where: Where
    id: str | None  # None when the document gives no usable id
    needs: list[str]
    needs_where: Where
    spec: dict  # JobSpec fields
    # where each field the document gave sits, by the field it means ("run", "env", ...)
    wheres: dict[str, Where] = dataclasses.field(default_factory=dict)
    needs_key: str = "needs"  # what this shape calls needs ("depends_on" in the seed's)
    needs_valid: bool = True  # False when the needs given could not be read
    raws: dict[str, object] = dataclasses.field(default_factory=dict)  # each field's value as written


def check_graph(jobs: list[Job], problems: Problems, known: Collection[str] = ()) -> None:
    """`known`: ids of jobs already there (a run that jobs are spawned
    into), which the new jobs may need."""
    by_id: dict[str, Job] = {}
    for job in jobs:
        if job.id is None:
            continue
        if job.id in by_id:  # only the seed's list can say an id twice
            problems.add(job.where + ("id",), f"duplicate job id {job.id!r} (also {field(by_id[job.id].where)})")
        else:
            by_id[job.id] = job
    for job in jobs:
        for need in job.needs:
            if need == job.id:
                problems.add(job.needs_where, "a job cannot need itself")
            elif need not in by_id and need not in known:
                hint = problems.hint(need, by_id)
                problems.add(job.needs_where, f"unknown job {need!r}{hint}")
    graph = {job_id: [n for n in job.needs if n in by_id and n != job_id] for job_id, job in by_id.items()}
    for cycle in _cycles(graph):
        problems.add(by_id[cycle[0]].needs_where, "cycle: " + " -> ".join(cycle))


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """One cycle per back edge of a depth-first search, each distinct, as `[a, b, a]`.

    Iterative, so a chain of a thousand jobs does not hit the recursion limit.
    Breaking these cycles may reveal others; the resubmission reports those.
    """
    cycles = []
    done: set[str] = set()
    for root in graph:
        if root in done:
            continue
        stack = [(root, iter(graph[root]))]
        on_stack = {root: 0}  # job -> its index in `stack`
        while stack:
            node, needs = stack[-1]
            for need in needs:
                if need in on_stack:
                    cycles.append([job for job, _ in stack[on_stack[need]:]] + [need])
                elif need not in done:
                    on_stack[need] = len(stack)
                    stack.append((need, iter(graph[need])))
                    break
            else:
                stack.pop()
                del on_stack[node]
                done.add(node)
    return cycles
