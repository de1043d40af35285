"""The FinOps report: one self-contained HTML file plus a Markdown/CSV export of its tables.

>>> from features.store import Store
>>> from forecaster.report import collect_report_inputs, render_report
>>> with Store("forecaster.duckdb", read_only=True) as st:  # doctest: +SKIP
...     render_report(collect_report_inputs(st), "report.html")

:func:`collect_report_inputs` reads the pipeline's results (docs/results.md) and tolerates
any of them missing; :func:`render_report` writes the page (plotly.js embedded once, no
network needed); :func:`export_tables` writes ``report.md`` and one CSV per table.
Plotly is imported only when a report is rendered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from forecaster.report.export import export_tables
from forecaster.report.inputs import KpiTargets, ReportInputs, collect_report_inputs, kpis

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "KpiTargets",
    "ReportInputs",
    "collect_report_inputs",
    "export_tables",
    "kpis",
    "render_report",
]


def render_report(inputs: ReportInputs, path: str | Path, **kwargs: Any) -> Path:
    """Write the HTML report (see :func:`forecaster.report.html.render_report`)."""
    from forecaster.report.html import render_report as _render

    return _render(inputs, path, **kwargs)
