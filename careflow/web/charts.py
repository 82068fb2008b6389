"""Geometry of the dashboard's charts (pure): where each bar, line and marker goes in an inline SVG.

The templates draw what these return; the numbers come from the same ``Table`` the text
alternative and the CSV are written from. Colours are the Okabe-Ito palette (distinguishable with
the common colour-vision deficiencies), and no chart relies on colour alone: every bar carries its
value and its group letter or kind as text, work kinds differ by fill pattern too, and every line
has its own marker shape (the region's average is dashed) and is named in the legend.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from careflow.web.dashboard import Row, Table, Value

PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
GROUP_COLOURS = {"A": "#D55E00", "B": "#E69F00", "C": "#56B4E9", "D": "#009E73"}
MARKERS = ("circle", "square", "triangle", "diamond", "cross")
INK = "#1d2a33"


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    pattern: str | None
    label: str  # the text beside the bar: the value, or <5
    label_x: float
    label_anchor: str = "start"


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    text: str


@dataclass(frozen=True)
class Line:
    name: str
    colour: str
    marker: str
    dashed: bool
    points: tuple[Point, ...]
    segments: tuple[str, ...]  # polyline point lists, broken where a value is missing


@dataclass
class Chart:
    width: int
    height: int
    bars: list[Bar] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    ticks: list[tuple[float, str]] = field(default_factory=list)  # y axis: (y, label)
    columns: list[tuple[float, str]] = field(default_factory=list)  # x axis: (x, label)
    row_labels: list[tuple[float, str]] = field(default_factory=list)


def _text(value: Value, score: bool) -> str:
    if value is None:
        return "–" if score else "<5"
    return f"{100 * float(value):.0f}%" if score else str(value)


def pyramid(row: Row, columns: list[str], biggest: float) -> Chart:
    """One neighbourhood's pyramid: group A on top, D at the base, each bar centred and as wide as
    its count (on one scale for every neighbourhood, so they compare at a glance)."""
    width, bar_h, gap, label_w = 300, 22, 4, 44
    chart = Chart(width, len(columns) * (bar_h + gap))
    span = width - 2 * label_w
    for i, (group, value) in enumerate(zip(columns, row.values)):
        w = 0.0 if value is None else span * float(value) / biggest
        x = label_w + (span - w) / 2
        y = i * (bar_h + gap)
        chart.bars.append(Bar(x, y, w, bar_h, GROUP_COLOURS.get(group, PALETTE[i]), None,
                              f"{group} {_text(value, False)}", label_w + span / 2 + max(w / 2, 0) + 4))
    return chart


def grouped_bars(table: Table, names: dict[str, str]) -> Chart:
    """Horizontal bars per row, one per column (a kind of work), each a colour and a pattern."""
    label_w, bar_h, width = 170, 14, 560
    per_row = len(table.columns) * bar_h + 10
    chart = Chart(width, max(1, len(table.rows)) * per_row + 20)
    span = width - label_w - 60
    biggest = table.maximum()
    for r_i, row in enumerate(table.rows):
        top = r_i * per_row
        chart.row_labels.append((top + per_row / 2, row.label))
        for c_i, value in enumerate(row.values):
            w = 0.0 if value is None else span * float(value) / biggest
            y = top + c_i * bar_h
            chart.bars.append(Bar(label_w, y, w, bar_h - 2, PALETTE[c_i], "hatch" if c_i % 2 else None,
                                  f"{names.get(table.columns[c_i], table.columns[c_i])}: {_text(value, False)}",
                                  label_w + w + 4))
    return chart


def lines(table: Table) -> Chart:
    """One line per row over the columns (months or periods), broken where a value is unknown or
    suppressed; scores on a 0-100 % axis, counts from 0 to the largest."""
    width, height, left, right, top, bottom = 640, 240, 48, 40, 12, 36
    chart = Chart(width, height)
    top_value = 1.0 if table.score else _nice(table.maximum())
    n = max(1, len(table.columns) - 1)
    xs = [left + (width - left - right) * i / n for i in range(len(table.columns))]
    if len(table.columns) == 1:
        xs = [left + (width - left - right) / 2]

    def y_of(v: float) -> float:
        return top + (height - top - bottom) * (1 - v / top_value)

    for k in range(5):
        v = top_value * k / 4
        chart.ticks.append((y_of(v), f"{100 * v:.0f}%" if table.score else f"{v:g}"))
    step = max(1, len(table.columns) // 6)
    chart.columns = [(x, c) for i, (x, c) in enumerate(zip(xs, table.columns)) if i % step == 0 or i == len(xs) - 1]
    colour_i = 0
    for row in table.rows:
        if row.region:
            colour, marker, dashed = INK, "cross", True
        else:
            colour, marker, dashed = PALETTE[colour_i % len(PALETTE)], MARKERS[colour_i % 4], False
            colour_i += 1
        points: list[Point] = []
        segments: list[str] = []
        current: list[str] = []
        for x, value in zip(xs, row.values):
            if value is None:
                if current:
                    segments.append(" ".join(current))
                current = []
                continue
            y = y_of(float(value))
            points.append(Point(round(x, 1), round(y, 1), _text(value, table.score)))
            current.append(f"{x:.1f},{y:.1f}")
        if current:
            segments.append(" ".join(current))
        chart.lines.append(Line(row.label, colour, marker, dashed, tuple(points), tuple(segments)))
    return chart


def _nice(value: float) -> float:
    """The axis top: the next of 1, 2, 5 times a power of ten at or above ``value``."""
    scale = 1.0
    while scale * 10 <= value:
        scale *= 10
    for m in (1, 2, 5, 10):
        if m * scale >= value:
            return m * scale
    return 10 * scale
