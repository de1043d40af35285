"""Markdown and CSV export of the report's tables (``forecaster report --tables-dir``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from forecaster.report.inputs import ReportInputs, report_tables

_TITLES = {
    "kpis": "KPIs against targets",
    "showback": "Chargeback by team (USD per month)",
    "untagged_spend": "Untagged spend by service and account",
    "top_anomalies": "Top anomalies",
    "top_rightsizing": "Top right-sizing recommendations",
    "savings": "Savings by kind (USD per month)",
    "scorecards": "Team scorecards",
    "scenarios": "Scenarios over the horizon",
}


def _cell(v: object) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return ""
    if isinstance(v, pd.Timestamp):
        return v.strftime("%Y-%m-%d")
    if isinstance(v, float):
        return f"{v:,.2f}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no optional dependency)."""
    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(_cell(v) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join([head, sep, *rows])


def export_tables(inputs: ReportInputs, directory: str | Path) -> list[Path]:
    """Write ``report.md`` and one ``<table>.csv`` per table into ``directory``.

    Returns
    -------
    list of Path
        The files written (``report.md`` first).
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tables = report_tables(inputs)
    written: list[Path] = []
    md = ["# FinOps forecast report: tables", ""]
    md += [f"- {w}" for w in inputs.warnings]
    for name, df in tables.items():
        md += ["", f"## {_TITLES.get(name, name)}", "", markdown_table(df)]
    if inputs.missing:
        md += ["", "## Missing inputs", ""] + [f"- {v}" for v in inputs.missing.values()]
    md_path = out / "report.md"
    md_path.write_text("\n".join(md) + "\n", encoding="utf-8")
    written.append(md_path)
    for name, df in tables.items():
        p = out / f"{name}.csv"
        df.to_csv(p, index=False)
        written.append(p)
    return written
