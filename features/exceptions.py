"""All exceptions raised by forecaster, in one module.

Every stage imports its errors from here so that a caller can catch one family
(``ForecasterError``) or a precise kind. Messages follow the house rule:
"parameter X must be Y, got Z", and input errors name the file, row and column.
"""

from __future__ import annotations

from collections.abc import Sequence


class ForecasterError(Exception):
    """Base class of every error raised on purpose by forecaster."""


class ConfigError(ForecasterError, ValueError):
    """A setting or parameter has an invalid value."""


class InvalidFrameError(ForecasterError, ValueError):
    """A data frame does not follow its canonical contract.

    Parameters
    ----------
    message : str
        What is wrong.
    column : str, optional
        The offending column.
    rows : sequence of int, optional
        Positions (0-based) of offending rows; at most the first 10 are shown.
    frame : str, optional
        Name of the frame kind (``cost``, ``series``, ...).
    """

    def __init__(
        self,
        message: str,
        *,
        column: str | None = None,
        rows: Sequence[int] | None = None,
        frame: str | None = None,
    ) -> None:
        self.column = column
        self.rows = list(rows) if rows is not None else []
        self.frame = frame
        parts = []
        if frame:
            parts.append(f"{frame} frame")
        if column:
            parts.append(f"column {column!r}")
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows[:10])
            more = f" (+{len(self.rows) - 10} more)" if len(self.rows) > 10 else ""
            parts.append(f"rows [{shown}]{more}")
        prefix = ": ".join([", ".join(parts)]) if parts else ""
        super().__init__(f"{prefix}: {message}" if prefix else message)


class IngestError(ForecasterError, ValueError):
    """An input file cannot be ingested at all; nothing was written.

    The message names the file and, where known, the row (1-based line in the
    file, header = line 1 for CSV; 0-based row for parquet) and the column.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.path = path
        self.row = row
        self.column = column
        where = []
        if path:
            where.append(f"file {path}")
        if row is not None:
            where.append(f"row {row}")
        if column:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class NotFittedError(ForecasterError, RuntimeError):
    """An estimator was used before ``fit``."""


class StoreError(ForecasterError, RuntimeError):
    """The embedded store is missing, locked or inconsistent."""


class PolicyError(ConfigError):
    """A policy file (YAML) cannot be read or has invalid values.

    The message names the file, the line (1-based) and the key path
    (``budgets[0].monthly``) of every problem found.

    Parameters
    ----------
    message : str
        What is wrong (all problems, one per line).
    path : str, optional
        The policy file.
    problems : sequence of tuple (line, key, message), optional
        Each problem: 1-based line (None when unknown), dotted key path, message.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        problems: Sequence[tuple[int | None, str, str]] = (),
    ) -> None:
        self.path = path
        self.problems = list(problems)
        super().__init__(message)


class DeliveryError(ForecasterError, RuntimeError):
    """An alert could not be delivered (after retries, or a permanent refusal)."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        self.retryable = retryable
        super().__init__(message)


class TrackingError(ForecasterError, RuntimeError):
    """The MLflow tracking server or model registry cannot be reached or refused a call."""
