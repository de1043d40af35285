"""Shared terminal helpers: Rich consoles, progress bars, error exits."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import pandas as pd
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

#: Human output goes to stderr so that ``--json`` output on stdout stays clean.
err = Console(stderr=True)
out = Console()


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-line error and exit (2 = bad input, 1 = internal failure)."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def print_json(obj: Any) -> None:
    """Print one JSON object on stdout."""
    sys.stdout.write(json.dumps(obj, default=str, indent=2) + "\n")
    sys.stdout.flush()


@contextmanager
def progress(enabled: bool = True) -> Iterator[Progress]:
    """A Rich progress bar on stderr (disabled output when not a terminal or ``enabled=False``)."""
    bar = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
        disable=not enabled,
    )
    with bar:
        yield bar


def frame_table(
    df: pd.DataFrame,
    title: str,
    *,
    money: tuple[str, ...] = (),
    pct: tuple[str, ...] = (),
    max_rows: int = 30,
) -> Table:
    """Render a frame as a Rich table (money and percentage columns formatted)."""
    table = Table(title=title, title_justify="left")
    for col in df.columns:
        table.add_column(str(col), justify="right" if col in money or col in pct else "left")
    for _, row in df.head(max_rows).iterrows():
        cells = []
        for col in df.columns:
            v = row[col]
            if col in money and pd.notna(v):
                cells.append(f"${float(v):,.2f}")
            elif col in pct and pd.notna(v):
                cells.append(f"{float(v):.1f}%")
            elif isinstance(v, pd.Timestamp):
                cells.append(v.strftime("%Y-%m-%d"))
            else:
                cells.append("" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v))
        table.add_row(*cells)
    if len(df) > max_rows:
        table.caption = f"{len(df) - max_rows} more rows not shown"
    return table
