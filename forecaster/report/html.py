"""The self-contained HTML report: :func:`render_report`.

One file, no network: plotly.js is embedded once in the page head and every chart is a
``<div class="chart">`` holding one figure. A section whose inputs are missing shows a
``<div class="missing">`` notice naming the result and the command that produces it.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pandas as pd

from forecaster.report.inputs import (
    ReportInputs,
    kpis,
    monthly_spend,
    next_30_days,
    report_tables,
    series_of,
    team_names,
)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;
background:#f6f7f9}
header{background:#1f3b57;color:#fff;padding:18px 32px}
header h1{margin:0 0 4px;font-size:24px} header p{margin:0;opacity:.85;font-size:13px}
main{padding:8px 32px 40px;max-width:1400px;margin:auto}
section{background:#fff;border-radius:8px;padding:16px 20px;margin:18px 0;
box-shadow:0 1px 3px rgba(0,0,0,.08)}
h2{margin:0 0 10px;font-size:19px;color:#1f3b57} h3{font-size:15px;margin:14px 0 6px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:12px}
.chart{min-height:200px}
.missing{background:#fff8e1;border-left:4px solid #f0ad4e;padding:8px 12px;margin:8px 0;
font-size:14px}
.warn{background:#fdecea;border-left:4px solid #d9534f;padding:8px 12px;margin:8px 0}
.derived{color:#666;font-size:12px;margin:4px 0}
.tablewrap{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:13px;margin:6px 0 12px;width:100%}
th,td{border-bottom:1px solid #e3e3e3;padding:4px 8px;text-align:left}
th{background:#f0f3f6} td.num{text-align:right;font-variant-numeric:tabular-nums}
.summary li{margin:4px 0}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:12px}
.card{border:1px solid #dde3ea;border-radius:8px;padding:10px 14px}
.card h3{margin:0 0 6px} .card dl{display:grid;grid-template-columns:auto auto;gap:2px 10px;
margin:0;font-size:13px} .card dd{margin:0;text-align:right}
.ok{color:#2ca02c} .bad{color:#d62728}
footer{font-size:12px;color:#666;padding:0 32px 24px}
"""

_MONEY_HINTS = (
    "cost",
    "spend",
    "usd",
    "impact",
    "saving",
    "forecast",
    "hi_80",
    "lo_80",
    "vs_baseline",
)


def _esc(v: object) -> str:
    return html.escape(str(v), quote=True)


def _fmt(col: str, v: Any) -> tuple[str, bool]:
    """Cell text and whether it is numeric."""
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "", False
    if isinstance(v, pd.Timestamp):
        return v.strftime("%Y-%m-%d"), False
    if isinstance(v, bool):
        return ("yes" if v else "no"), False
    if isinstance(v, int | float):
        lc = col.lower()
        if lc.endswith("_pct") or lc.endswith("pct"):
            return f"{float(v):.1f}%", True
        if any(h in lc for h in _MONEY_HINTS) or lc[:4].isdigit() or lc == "total":
            return f"${float(v):,.0f}", True
        if float(v).is_integer():
            return f"{int(v):,}", True
        return f"{float(v):,.2f}", True
    return str(v), False


def table_html(df: pd.DataFrame, *, name: str) -> str:
    """An HTML table (escaped) with money, percent and dates formatted."""
    head = "".join(f"<th>{_esc(c)}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for col, v in zip(df.columns, row, strict=True):
            text, num = _fmt(str(col), v)
            cls = ' class="num"' if num else ""
            cells.append(f"<td{cls}>{_esc(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div class="tablewrap"><table data-table="{_esc(name)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


class _Page:
    """Collects sections; renders each figure into a chart div."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.charts: list[str] = []

    def add(self, text: str) -> None:
        self.parts.append(text)

    def chart(self, name: str, fig: Any) -> str:
        div_id = f"chart-{name}"
        self.charts.append(name)
        inner = fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=div_id,
            config={"displaylogo": False, "responsive": True},
        )
        return f'<div class="chart" data-chart="{_esc(name)}">{inner}</div>'


def _missing(text: str, name: str = "") -> str:
    return f'<div class="missing" data-missing="{_esc(name)}">{_esc(text)}</div>'


def _derived(inputs: ReportInputs, name: str) -> str:
    how = inputs.derived.get(name)
    return f'<p class="derived">{_esc(name)}: {_esc(how)}.</p>' if how else ""


def _money(v: float | None) -> str:
    return "n/a" if v is None else f"${v:,.0f}"


def _summary(inputs: ReportInputs) -> str:
    items = []
    d = inputs.data
    if d.get("cost_rows"):
        items.append(
            f"Cost data: {d['cost_rows']:,} rows over {d['days']} day(s), "
            f"{d['first_day']:%Y-%m-%d} to {d['last_day']:%Y-%m-%d}; "
            f"{_money(d['spend'])} effective cost in all."
        )
    spend = monthly_spend(inputs)
    if spend:
        items.append(f"Spend run-rate (last 30 days): {_money(spend)} per month.")
    fc = inputs.get("forecast")
    if fc is not None:
        tot = fc[fc["level"] == "total"]
        if not tot.empty:
            s30 = next_30_days(inputs, "total", "total")
            if s30 is not None:
                items.append(
                    f"Forecast, next 30 days: {_money(s30['cost'])} "
                    f"(80 % interval {_money(s30['lo_80'])} – {_money(s30['hi_80'])})."
                )
    an = inputs.get("anomalies")
    if an is not None:
        items.append(
            f"{len(an)} anomalies, {_money(float(an['impact'].sum()))} at stake; the largest: "
            f"{an.sort_values('impact').iloc[-1].get('title', '')}."
        )
    sav = inputs.get("savings")
    if sav is not None:
        s = float(sav["usd_per_month"].sum())
        pct = f" ({100 * s / spend:.1f} % of spend)" if spend else ""
        items.append(f"Savings identified: {_money(s)} per month{pct}.")
    if inputs.tagged_total > 0:
        items.append(
            f"Untagged spend (missing a required tag): {_money(inputs.untagged_spend)} of "
            f"{_money(inputs.tagged_total)} "
            f"({100 * inputs.untagged_spend / inputs.tagged_total:.1f} %)."
        )
    for k in kpis(inputs):
        if k.value is not None and k.met is False:
            items.append(f"Below target: {k.label} {k.value:.1f} % (target {k.target:g} %).")
    if not items:
        items.append("Nothing to summarise yet: the store holds no data.")
    lis = "".join(f"<li>{_esc(t)}</li>" for t in items)
    return f'<ul class="summary">{lis}</ul>'


def _scorecard_html(sc: pd.DataFrame, targets: Any) -> str:
    cards = []
    labels = {
        "last_month_cost": "last month",
        "next_30d_forecast": "next 30 days",
        "next_30d_hi_80": "  80 % high",
        "cpu_util_pct": "CPU util.",
        "memory_util_pct": "memory util.",
        "gpu_util_pct": "GPU util.",
        "anomalies": "anomalies",
        "anomaly_impact": "anomaly impact",
        "savings_per_month": "savings / month",
    }
    goal = {
        "cpu_util_pct": targets.cpu_util_pct,
        "memory_util_pct": targets.memory_util_pct,
        "gpu_util_pct": targets.gpu_util_pct,
    }
    for row in sc.to_dict("records"):
        dl = []
        for col, label in labels.items():
            if col not in row or row[col] is None or pd.isna(row[col]):
                continue
            text, _ = _fmt(col, row[col])
            cls = ""
            if col in goal:
                cls = ' class="ok"' if row[col] >= goal[col] else ' class="bad"'
            dl.append(f"<dt>{_esc(label)}</dt><dd{cls}>{_esc(text)}</dd>")
        cards.append(
            f'<div class="card" data-team="{_esc(row["team"])}"><h3>{_esc(row["team"])}</h3>'
            f"<dl>{''.join(dl)}</dl></div>"
        )
    return f'<div class="cards">{"".join(cards)}</div>'


def _forecast_section(page: _Page, inputs: ReportInputs) -> str:
    from forecaster.report import charts

    hist = inputs.get("history")
    fc = inputs.get("forecast")
    out = ["<h2>Forecasts</h2>"]
    if fc is None:
        out.append(_missing(inputs.why_missing("forecast"), "forecast"))
    out.append(_derived(inputs, "history"))
    if hist is None and fc is None:
        return "".join(out)

    def series(df: pd.DataFrame | None, level: str, name: str) -> pd.DataFrame | None:
        return series_of(df, level, name)

    out.append(
        page.chart(
            "fan-total",
            charts.fan_chart(
                series(hist, "total", "total"), series(fc, "total", "total"), "Total spend"
            ),
        )
    )
    teams = team_names(fc)
    if teams:
        out.append('<h3>Per team</h3><div class="grid">')
        for t in teams:
            fig = charts.fan_chart(series(hist, "team", t), series(fc, "team", t), f"Team {t}")
            out.append(page.chart(f"fan-team-{t}", fig))
        out.append("</div>")
    return "".join(out)


def render_report(
    inputs: ReportInputs, path: str | Path, *, title: str = "FinOps forecast report"
) -> Path:
    """Write the report as one self-contained HTML file.

    Parameters
    ----------
    inputs : ReportInputs
        From :func:`forecaster.report.collect_report_inputs`.
    path : str or Path
        Output file; its folder is created.
    title : str

    Returns
    -------
    Path
        The file written.
    """
    from plotly.offline import get_plotlyjs

    from forecaster.report import charts

    page = _Page()
    tables = report_tables(inputs)
    t = inputs.targets

    warn = "".join(f'<div class="warn">{_esc(w)}</div>' for w in inputs.warnings)
    page.add(f'<section id="summary"><h2>Executive summary</h2>{warn}{_summary(inputs)}</section>')

    # KPIs
    ks = kpis(inputs)
    body = [
        page.chart("kpis", charts.kpi_bullets(ks)),
        table_html(tables["kpis"], name="kpis"),
    ]
    page.add(f'<section id="kpis"><h2>KPIs</h2>{"".join(body)}</section>')

    page.add(f'<section id="forecasts">{_forecast_section(page, inputs)}</section>')

    # Anomalies
    an = inputs.get("anomalies")
    if an is not None:
        hist = inputs.get("history")
        tot = hist[hist["level"] == "total"] if hist is not None and "level" in hist else hist
        body = [
            page.chart("anomalies", charts.anomaly_timeline(an, tot)),
            "<h3>Top anomalies</h3>",
            table_html(tables["top_anomalies"], name="top_anomalies"),
        ]
    else:
        body = [_missing(inputs.why_missing("anomalies"), "anomalies")]
    page.add(f'<section id="anomalies"><h2>Anomalies and root causes</h2>{"".join(body)}</section>')

    # Showback, chargeback, tags
    body = []
    sb = inputs.get("showback")
    if sb is not None:
        body += [
            _derived(inputs, "showback"),
            page.chart("showback", charts.showback_bars(sb)),
            "<h3>Chargeback by team (last 6 months)</h3>",
            table_html(tables["showback"], name="showback"),
        ]
    else:
        body.append(_missing(inputs.why_missing("showback") or "No cost data.", "showback"))
    tc = inputs.get("tag_coverage")
    if tc is not None:
        body += [
            _derived(inputs, "tag_coverage"),
            page.chart("tag-coverage", charts.tag_coverage_bars(tc, t.tag_coverage_pct)),
        ]
    else:
        body.append(_missing(inputs.why_missing("tag_coverage"), "tag_coverage"))
    if "untagged_spend" in tables and not tables["untagged_spend"].empty:
        body += [
            "<h3>Untagged spend by service and account</h3>",
            table_html(tables["untagged_spend"], name="untagged_spend"),
        ]
    elif inputs.untagged is not None:
        body.append("<p>No untagged spend: every charge carries the required tags.</p>")
    page.add(
        f'<section id="showback"><h2>Showback, chargeback and tags</h2>{"".join(body)}</section>'
    )

    # Savings
    body = []
    sav = inputs.get("savings")
    if sav is not None:
        spend = monthly_spend(inputs)
        body.append(page.chart("savings", charts.savings_waterfall(spend, sav)))
    else:
        body.append(_missing(inputs.why_missing("savings"), "savings"))
    if "top_rightsizing" in tables:
        body += [
            "<h3>Top right-sizing recommendations</h3>",
            table_html(tables["top_rightsizing"], name="top_rightsizing"),
        ]
    else:
        body.append(_missing(inputs.why_missing("rightsizing"), "rightsizing"))
    pl = inputs.get("placement")
    if pl is not None:
        body += ["<h3>GPU placement policies</h3>", table_html(pl, name="placement")]
    page.add(
        '<section id="savings"><h2>Savings: right-sizing and placement</h2>'
        f"{''.join(body)}</section>"
    )

    # Scorecards
    if "scorecards" in tables:
        body = [_scorecard_html(tables["scorecards"], t)]
    else:
        body = [
            _missing("No team data: no forecast per team and no tagged showback.", "scorecards")
        ]
    page.add(f'<section id="scorecards"><h2>Team scorecards</h2>{"".join(body)}</section>')

    # Scenarios
    sm = inputs.get("scenario_monthly")
    body = []
    if sm is not None:
        body.append(page.chart("scenario-cost", charts.scenario_cost(sm)))
        sc = inputs.get("scenario_capacity")
        if sc is not None:
            body.append(page.chart("scenario-capacity", charts.scenario_capacity(sc)))
        body += [
            "<h3>Scenarios over the horizon</h3>",
            table_html(tables["scenarios"], name="scenarios"),
        ]
    else:
        body.append(_missing(inputs.why_missing("scenario_monthly"), "scenario_monthly"))
    page.add(f'<section id="scenarios"><h2>What-if scenarios</h2>{"".join(body)}</section>')

    missing = "".join(f"<li>{_esc(v)}</li>" for v in inputs.missing.values())
    footer = (
        f"<footer>Store {_esc(inputs.store_path)} · generated "
        f"{inputs.generated_at:%Y-%m-%d %H:%M} UTC · {len(page.charts)} charts"
        + (f"<p>Missing inputs:</p><ul>{missing}</ul>" if missing else "")
        + "</footer>"
    )
    doc = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>{_esc(title)}</title>'
        f"<style>{_CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>'
        f"<header><h1>{_esc(title)}</h1><p>forecaster · {len(page.charts)} charts · "
        f"data {_period(inputs)}</p></header><main>{''.join(page.parts)}</main>{footer}"
        "</body></html>"
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(doc, encoding="utf-8")
    return out


def _period(inputs: ReportInputs) -> str:
    d = inputs.data
    if not d.get("first_day"):
        return "none"
    return f"{d['first_day']:%Y-%m-%d} – {d['last_day']:%Y-%m-%d}"
