"""Tables that fit the terminal: never an ellipsis, never a cropped cell.

A table wider than the console first folds its first column (the row's name: an id, a file
path, a technique) over lines, if that leaves the column at least ``NAME_MIN`` cells. Failing
that it is printed as stacked tables, each beginning with the row's name: the first holds the
key columns (the main metric with its interval, the noisy-label fit) and only them, as many as
fit; the next ones the key columns left over, then the others, as many as fit. Every column is
shown in full in one of them: a cell wider than the room it gets (a long id) is folded over
lines, each ending after a '/', '+', '_', ... where there is one near its end, so that every
character is printed. A log file gets the 80 columns of a terminal (rich's default without one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

#: The fewest cells the first column keeps before the table is split instead (fewer when its
#: longest cell is shorter).
NAME_MIN = 20
#: A folded line ends after a separator in the line's second half: the strongest kind there.
BREAKS = ("/\\ ", "+,", "_-=")


@dataclass(frozen=True)
class Column:
    header: str  # "\n" splits a header over lines
    key: bool = False  # in the first table, before the other columns, when the table is stacked
    justify: str = "right"
    wrap: bool = False  # prose: wraps within its cell instead of widening the table


def _header_width(column: Column) -> int:
    return max(cell_len(line) for line in column.header.split("\n"))


def _width(column: Column, cells: list[str]) -> int:
    if column.wrap:  # takes what is left; counts as its header's width or 20, whichever is more
        return max(20, _header_width(column))
    return max([_header_width(column)] + [cell_len(c) for c in cells])


def _need(group: Sequence[int], widths: Sequence[int]) -> int:
    """Cells a table of these columns takes: each column's width, its padding and border."""
    return sum(widths[i] + 3 for i in group) + 1


def fold(text: str, width: int) -> str:
    """``text`` in lines of at most ``width`` cells ("\\n" between them; removed, they give
    ``text`` back), each line ending after a separator (``BREAKS``) when one lies in its second half."""
    lines: list[str] = []
    while cell_len(text) > width:
        cut, cells = 0, 0
        while cut < len(text) and cells + cell_len(text[cut]) <= width:
            cells += cell_len(text[cut])
            cut += 1
        cut = max(cut, 1)  # a character wider than the column still moves on
        for kind in BREAKS:
            after = max(text.rfind(ch, 0, cut) for ch in kind) + 1
            if 2 * after >= cut:
                cut = after
                break
        lines.append(text[:cut])
        text = text[cut:]
    return "\n".join(lines + [text])


def layout(columns: Sequence[Column], widths: Sequence[int], budget: int) -> tuple[list[list[int]], list[int]]:
    """The column indices of each table to print, and the width each column is shown at (less
    than its ``widths`` one where its cells are folded), so that no table is wider than ``budget``."""
    n = len(columns)
    everything = list(range(n))
    if _need(everything, widths) <= budget:
        return [everything], list(widths)
    heads = [_header_width(c) for c in columns]
    floor = max(heads[0], min(widths[0], NAME_MIN))
    shown = list(widths)
    shown[0] = budget - _need(everything[1:], widths) - 3  # one table, the name folded
    if shown[0] >= floor:
        return [everything], shown
    key = [i for i in everything[1:] if columns[i].key or columns[i].wrap]
    rest = [i for i in everything[1:] if i not in key]
    # stacked: the name as wide as lets every key column stand beside it, but never under ``floor``
    shown[0] = min(widths[0], max(floor, budget - 3 - _need(key, widths)))
    widest_head = max([heads[i] for i in everything[1:] if not columns[i].wrap], default=0)
    shown[0] = max(heads[0], min(shown[0], budget - 7 - widest_head))  # each header fits beside the name
    room = budget - 7 - shown[0]  # the widest a column can be beside the name
    for i in everything[1:]:
        if not columns[i].wrap and widths[i] > room:
            shown[i] = max(heads[i], room)
    groups, current = [], [0]
    for i in key + rest:
        first_done = i in rest and not groups  # the first table holds key columns only
        if len(current) > 1 and (first_done or _need(current + [i], shown) > budget):
            groups.append(current)
            current = [0]
        current.append(i)
    groups.append(current)
    return groups, shown


def print_table(console: Console, title: str, columns: Sequence[Column], rows: Sequence[Sequence[str]], *,
                styles: Sequence[str | None] | None = None, caption: str | None = None) -> None:
    """Print ``title`` and ``rows`` (already formatted strings) under ``columns``, folded or
    stacked when too wide (see the module's docstring)."""
    widths = [_width(c, [r[i] for r in rows]) for i, c in enumerate(columns)]
    groups, shown = layout(columns, widths, console.width - 1)
    if title:
        console.print(Text(title, style="bold"))
    for n, group in enumerate(groups):
        t = Table(caption=caption if n == len(groups) - 1 else None)
        for i in group:
            c = columns[i]
            if c.wrap:  # only prose columns give way to rich
                t.add_column(c.header, justify=c.justify if i else "left", overflow="fold")
            else:
                t.add_column(c.header, justify=c.justify if i else "left", no_wrap=True, overflow="fold",
                             width=shown[i])
        for j, row in enumerate(rows):
            cells = (Text(row[i] if columns[i].wrap else fold(row[i], shown[i])) for i in group)  # no markup
            t.add_row(*cells, style=styles[j] if styles else None)
        console.print(t)


__all__ = ["Column", "fold", "layout", "print_table"]
