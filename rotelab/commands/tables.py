"""Tables that fit the terminal: never an ellipsis.

A table wider than the console is printed as stacked tables: the first holds the key
columns (the row's name, the main metric with its interval, the noisy-label fit), each
further one the row's name and as many of the other columns as fit. A log file gets the
80 columns of a terminal (rich's default without one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text


@dataclass(frozen=True)
class Column:
    header: str  # "\n" splits a header over lines
    key: bool = False  # shown in the first table whatever the width
    justify: str = "right"
    wrap: bool = False  # prose: wraps within its cell instead of widening the table


def _width(column: Column, cells: list[str]) -> int:
    if column.wrap:  # takes what is left; counts as its header's width or 20, whichever is more
        return max(20, cell_len(column.header))
    return max([cell_len(line) for line in column.header.split("\n")] + [cell_len(c) for c in cells])


def print_table(console: Console, title: str, columns: Sequence[Column], rows: Sequence[Sequence[str]], *,
                styles: Sequence[str | None] | None = None, caption: str | None = None) -> None:
    """Print ``title`` and ``rows`` (already formatted strings) under ``columns``, stacked when too wide."""
    widths = [_width(c, [r[i] for r in rows]) for i, c in enumerate(columns)]
    budget = console.width - 1
    groups = [list(range(len(columns)))]
    if sum(widths) + 3 * len(columns) + 1 > budget:
        groups = _groups(columns, widths, budget)
    if title:
        console.print(Text(title, style="bold"))
    for n, group in enumerate(groups):
        t = Table(caption=caption if n == len(groups) - 1 else None)
        for i in group:
            c = columns[i]
            t.add_column(c.header, justify=c.justify if i else "left", no_wrap=not c.wrap, overflow="fold",
                         min_width=None if c.wrap else widths[i])  # only prose columns give way
        for j, row in enumerate(rows):
            t.add_row(*(Text(row[i]) for i in group), style=styles[j] if styles else None)  # user text: no markup
        console.print(t)


def _groups(columns: Sequence[Column], widths: list[int], budget: int) -> list[list[int]]:
    """Column indices per stacked table: the key columns first, then the name and the rest."""
    key = [i for i, c in enumerate(columns) if c.key or c.wrap or i == 0]
    rest = [i for i in range(len(columns)) if i not in key]
    groups, current = [key], [0]
    for i in rest:
        if current != [0] and sum(widths[j] + 3 for j in current + [i]) + 1 > budget:
            groups.append(current)
            current = [0]
        current.append(i)
    if current != [0]:
        groups.append(current)
    return groups


__all__ = ["Column", "print_table"]
