"""Small charts as server-rendered SVG: no script, no library, readable by screen
readers (a title, a description, and every bar labelled), and sized by the viewBox so
they scale to a phone."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT, BOTTOM, TOP = 600, 220, 30, 24


def bar_chart(title: str, points: Sequence[tuple[str, int]], unit: str) -> str:
    """A bar per (label, value); the tallest bar fills the height."""
    description = ", ".join(f"{label}: {value} {unit}" for label, value in points)
    head = (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title><desc>{escape(description or 'no data yet')}</desc>"
    )
    if not points:
        middle = f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">—</text>'
        return head + middle + "</svg>"
    peak = max(value for _label, value in points) or 1
    slot = WIDTH / len(points)
    bar = max(slot * 0.7, 1.0)
    parts = [head]
    for index, (label, value) in enumerate(points):
        height = (HEIGHT - BOTTOM - TOP) * value / peak
        x = index * slot + (slot - bar) / 2
        y = HEIGHT - BOTTOM - height
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{height:.1f}">'
            f"<title>{escape(label)}: {value} {escape(unit)}</title></rect>"
        )
        if len(points) <= 14 or index % max(len(points) // 7, 1) == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{HEIGHT - 10}" text-anchor="middle" '
                f'class="axis">{escape(label[-5:])}</text>'
            )
        if len(points) <= 14:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{max(y - 4, 12):.1f}" text-anchor="middle" '
                f'class="value">{value}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
