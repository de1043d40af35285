"""Plotly figures of the report. Each builder takes plain frames and returns a Figure.

Plotly is imported here only; this module is imported lazily by the report command.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go

from forecaster.report.inputs import Kpi

_TEMPLATE = "plotly_white"
_BLUE = "rgb(31,119,180)"
_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
_SEVERITY = {
    "critical": "#b2182b",
    "high": "#d6604d",
    "warning": "#f4a582",
    "medium": "#f4a582",
    "low": "#92c5de",
    "info": "#92c5de",
}


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _layout(fig: go.Figure, title: str, *, height: int = 360, **kw: object) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.01, "font": {"size": 15}},
        template=_TEMPLATE,
        height=height,
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.18},
        **kw,
    )
    return fig


def kpi_bullets(kpis: Sequence[Kpi]) -> go.Figure:
    """Horizontal bars of each KPI (percent) with its target as a marker."""
    shown = [k for k in kpis]
    labels = [k.label for k in shown]
    values = [k.value if k.value is not None else 0.0 for k in shown]
    colors = ["#bbbbbb" if k.met is None else ("#2ca02c" if k.met else "#d62728") for k in shown]
    text = [
        "n/a"
        if k.value is None
        else f"{k.value:.1f}%" + ("" if k.target is None else f" (target {k.target:g}%)")
        for k in shown
    ]
    fig = go.Figure(
        go.Bar(
            x=values,
            y=labels,
            orientation="h",
            marker_color=colors,
            text=text,
            textposition="outside",
            hovertext=[k.source if k.value is not None else k.missing for k in shown],
            name="value",
        )
    )
    tg = [(k.target, k.label) for k in shown if k.target is not None]
    fig.add_trace(
        go.Scatter(
            x=[t for t, _ in tg],
            y=[lbl for _, lbl in tg],
            mode="markers",
            marker={"symbol": "line-ns", "size": 26, "line": {"width": 3, "color": "#222"}},
            name="target",
        )
    )
    top = max([*values, *(t for t, _ in tg), 100.0])
    fig.update_xaxes(range=[0, top * 1.3], ticksuffix="%")
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, "KPIs against the FinOps roadmap targets", height=60 + 48 * len(shown))


def fan_chart(
    history: pd.DataFrame | None,
    forecast: pd.DataFrame | None,
    title: str,
    *,
    history_days: int = 120,
) -> go.Figure:
    """History, forecast mean and nested 95/80 % bands of one series (daily USD)."""
    fig = go.Figure()
    if history is not None and not history.empty:
        h = history.sort_values("ds")
        h = h[h["ds"] > h["ds"].max() - pd.Timedelta(days=history_days)]
        fig.add_trace(go.Scatter(x=h["ds"], y=h["y"], name="actual", line={"color": "#333"}))
    if forecast is not None and not forecast.empty:
        f = forecast.sort_values("ds")
        for lo, hi, alpha, name in (
            ("lo_95", "hi_95", 0.15, "95 %"),
            ("lo_80", "hi_80", 0.3, "80 %"),
        ):
            fig.add_trace(
                go.Scatter(
                    x=f["ds"],
                    y=f[hi],
                    mode="lines",
                    line={"width": 0},
                    showlegend=False,
                    hoverinfo="skip",
                )
            )
            fig.add_trace(
                go.Scatter(
                    x=f["ds"],
                    y=f[lo],
                    mode="lines",
                    line={"width": 0},
                    fill="tonexty",
                    fillcolor=_rgba("#1f77b4", alpha),
                    name=f"{name} interval",
                )
            )
        fig.add_trace(go.Scatter(x=f["ds"], y=f["yhat"], name="forecast", line={"color": _BLUE}))
    fig.update_yaxes(tickprefix="$", title="USD per day")
    return _layout(fig, title, height=320)


def anomaly_timeline(anomalies: pd.DataFrame, history: pd.DataFrame | None) -> go.Figure:
    """Total daily spend with the anomalies as markers (size ~ impact, hover = root cause)."""
    fig = go.Figure()
    if history is not None and not history.empty:
        h = history.sort_values("ds")
        fig.add_trace(
            go.Scatter(x=h["ds"], y=h["y"], name="daily spend", line={"color": "#999"}, yaxis="y")
        )
    a = anomalies.sort_values("period_start")
    impact = pd.to_numeric(a["impact"], errors="coerce").fillna(0.0).abs()
    size = 8 + 22 * (impact / impact.max()) ** 0.5 if impact.max() > 0 else 10
    sev = a["severity"].astype(str).str.lower() if "severity" in a else pd.Series("", index=a.index)
    hover = [
        f"<b>{t}</b><br>{s} · impact ${i:,.0f}<br>{rc}"
        for t, s, i, rc in zip(
            a.get("title", ""), sev, impact, a.get("root_cause", ""), strict=False
        )
    ]
    # Markers sit on the daily spend line at their day (the findings' own figures may be
    # hourly); without history they stand at their impact on a second axis.
    on_line = history is not None and not history.empty
    x = a["period_start"]
    if on_line:
        assert history is not None
        daily = history.groupby(history["ds"].dt.normalize())["y"].sum()
        day = a["period_start"].dt.normalize()
        y = day.map(daily)
        on_line = bool(y.notna().all())
        x = day if on_line else x
    if not on_line:
        y = impact
    fig.add_trace(
        go.Scatter(
            x=x,
            y=y,
            mode="markers",
            marker={
                "size": size,
                "color": [_SEVERITY.get(s, "#d62728") for s in sev],
                "line": {"width": 1, "color": "#333"},
            },
            name="anomaly (size: impact)",
            hovertext=hover,
            hoverinfo="text",
            yaxis="y" if on_line else "y2",
        )
    )
    fig.update_layout(yaxis={"title": "USD per day", "tickprefix": "$"})
    if not on_line:
        fig.update_layout(
            yaxis2={"title": "impact USD", "overlaying": "y", "side": "right", "tickprefix": "$"}
        )
    return _layout(fig, "Anomalies on the timeline (hover for the root cause)", height=380)


def savings_waterfall(spend: float | None, savings: pd.DataFrame) -> go.Figure:
    """Monthly spend, minus each kind of saving, to the optimized spend."""
    by_kind = savings.groupby("kind")["usd_per_month"].sum().sort_values(ascending=False)
    x: list[str] = []
    y: list[float] = []
    measure: list[str] = []
    if spend:
        x.append("spend today (30 d)")
        y.append(spend)
        measure.append("absolute")
    for kind, v in by_kind.items():
        x.append(str(kind))
        y.append(-float(v))
        measure.append("relative")
    x.append("after savings" if spend else "total savings")
    y.append(0.0)
    measure.append("total")
    fig = go.Figure(
        go.Waterfall(
            x=x,
            y=y,
            measure=measure,
            text=[
                f"${abs(v):,.0f}" if m != "total" else "" for v, m in zip(y, measure, strict=True)
            ],
            decreasing={"marker": {"color": "#2ca02c"}},
            increasing={"marker": {"color": "#d62728"}},
            totals={"marker": {"color": _BLUE}},
            connector={"line": {"color": "#888"}},
        )
    )
    fig.update_yaxes(tickprefix="$", title="USD per month")
    return _layout(
        fig, "Right-sizing, placement and purchase savings (per month)", showlegend=False
    )


def showback_bars(showback: pd.DataFrame) -> go.Figure:
    """Monthly cost per team, stacked (shared spend spread in)."""
    sb = showback.copy()
    sb["team"] = sb["team"].fillna("(unallocated)").astype(str)
    fig = go.Figure()
    order = sb.groupby("team")["total_cost"].sum().sort_values(ascending=False).index
    for i, team in enumerate(order):
        g = sb[sb["team"] == team].sort_values("month")
        fig.add_trace(
            go.Bar(
                x=g["month"], y=g["total_cost"], name=team, marker_color=_PALETTE[i % len(_PALETTE)]
            )
        )
    fig.update_layout(barmode="stack")
    fig.update_yaxes(tickprefix="$", title="USD per month")
    return _layout(fig, "Showback: monthly cost per team (shared spend allocated)", height=380)


def tag_coverage_bars(coverage: pd.DataFrame, target: float = 100.0) -> go.Figure:
    """Coverage of spend per required tag against the target."""
    cov = coverage.sort_values("coverage_pct")
    fig = go.Figure(
        go.Bar(
            x=cov["coverage_pct"],
            y=cov["tag"],
            orientation="h",
            text=[f"{v:.1f}%" for v in cov["coverage_pct"]],
            textposition="outside",
            marker_color=["#2ca02c" if v >= target else "#ef8a62" for v in cov["coverage_pct"]],
            name="coverage",
        )
    )
    fig.add_vline(x=target, line_dash="dash", line_color="#222")
    fig.update_xaxes(range=[0, 112], ticksuffix="%")
    return _layout(
        fig, f"Tag coverage of spend (target {target:g} %)", height=300, showlegend=False
    )


def scenario_cost(monthly: pd.DataFrame) -> go.Figure:
    """Monthly cost per scenario with its 80 % interval as error bars."""
    fig = go.Figure()
    for i, (name, g) in enumerate(monthly.groupby("scenario", sort=False)):
        g = g.sort_values("month")
        color = _PALETTE[i % len(_PALETTE)]
        fig.add_trace(
            go.Scatter(
                x=g["month"],
                y=g["cost"],
                name=str(name),
                mode="lines+markers",
                line={"color": color, "dash": "dash" if name == "baseline" else "solid"},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": (g["hi_80"] - g["cost"]).clip(lower=0),
                    "arrayminus": (g["cost"] - g["lo_80"]).clip(lower=0),
                    "color": _rgba(color, 0.6),
                },
            )
        )
    fig.update_yaxes(tickprefix="$", title="USD per month")
    return _layout(fig, "Scenarios: monthly cost with 80 % intervals", height=380)


def scenario_capacity(capacity: pd.DataFrame) -> go.Figure:
    """Nodes needed per instance type, grouped by scenario (hover: on-demand / Spot split)."""
    fig = go.Figure()
    cap = capacity.copy()
    types = sorted(cap["instance_type"].unique(), key=lambda t: (-_gpus_of(cap, t), t))
    for i, (name, g) in enumerate(cap.groupby("scenario", sort=False)):
        od = g[g["purchase_option"] == "on_demand"].groupby("instance_type")["count"].sum()
        spot = g[g["purchase_option"] == "spot"].groupby("instance_type")["count"].sum()
        counts = [int(od.get(t, 0) + spot.get(t, 0)) for t in types]
        fig.add_trace(
            go.Bar(
                x=types,
                y=counts,
                name=str(name),
                marker_color=_PALETTE[i % len(_PALETTE)],
                customdata=[[int(od.get(t, 0)), int(spot.get(t, 0))] for t in types],
                hovertemplate="%{x}: %{y} nodes<br>on-demand %{customdata[0]}, "
                "Spot %{customdata[1]}<extra>" + str(name) + "</extra>",
            )
        )
    fig.update_layout(barmode="group")
    fig.update_yaxes(title="nodes")
    return _layout(fig, "Scenarios: capacity at peak demand by instance type", height=400)


def _gpus_of(cap: pd.DataFrame, instance_type: str) -> int:
    g = cap[cap["instance_type"] == instance_type]
    c = g["count"].sum()
    return int(g["gpus"].sum() / c) if c else 0
