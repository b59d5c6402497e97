"""Slurm's compressed host lists (``node[01-03,7],gpu-[1-2]-a``) expanded to host names.

Slurm writes a job's nodes in this form (squeue ``%N``, sacct ``NodeList``,
``SLURM_JOB_NODELIST``). The executor expands it to name the nodes in the process log. Inside
a job the wrapper asks ``scontrol show hostnames`` instead, which is Slurm's own expansion.

The rules, as Slurm applies them: items are separated by commas outside brackets; a bracket
holds comma-separated numbers and ``lo-hi`` ranges; a bound written with leading zeros sets
the width every number of that range is padded to (``[08-10]`` -> 08, 09, 10; ``[8-10]`` ->
8, 9, 10); several brackets in one item multiply (``r[1-2]n[1-2]`` -> r1n1, r1n2, r2n1, r2n2).
"""

from __future__ import annotations

import itertools

#: a host list that expands to more names than this is refused rather than built in memory
MAX_HOSTS = 100_000


def expand(hostlist: str) -> list[str]:
    """The host names of ``hostlist``, in Slurm's order. ValueError when it is malformed."""
    hosts: list[str] = []
    for item in _top_level_items(hostlist.strip()):
        for parts in itertools.product(*_item_parts(item)):
            hosts.append("".join(parts))
            if len(hosts) > MAX_HOSTS:
                raise ValueError(f"host list {hostlist[:80]!r} names more than {MAX_HOSTS} hosts")
    return hosts


def _top_level_items(text: str) -> list[str]:
    items, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "[":
            depth += 1
            if depth > 1:
                raise ValueError(f"nested brackets in host list {text!r}")
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced ']' in host list {text!r}")
        elif char == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    if depth:
        raise ValueError(f"unbalanced '[' in host list {text!r}")
    items.append(text[start:])
    return [item for item in (i.strip() for i in items) if item]


def _item_parts(item: str) -> list[list[str]]:
    """The choices of each piece of ``item``: fixed text is one choice, a bracket several."""
    parts: list[list[str]] = []
    rest = item
    while "[" in rest:
        before, _, after = rest.partition("[")
        inside, _, rest = after.partition("]")
        if before:
            parts.append([before])
        parts.append(_numbers(inside, item))
    if rest:
        parts.append([rest])
    return parts


def _numbers(inside: str, item: str) -> list[str]:
    out: list[str] = []
    for chunk in inside.split(","):
        lo, dash, hi = chunk.strip().partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise ValueError(f"bad range {chunk!r} in host list item {item!r}")
        width = len(lo) if lo.startswith("0") and len(lo) > 1 else 0
        first, last = int(lo), int(hi) if dash else int(lo)
        if last < first:
            raise ValueError(f"range {chunk!r} runs backwards in host list item {item!r}")
        if last - first >= MAX_HOSTS:
            raise ValueError(f"range {chunk!r} names more than {MAX_HOSTS} hosts")
        out.extend(str(n).zfill(width) for n in range(first, last + 1))
    return out
