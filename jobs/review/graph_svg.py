"""The relationship graph of one scope as inline SVG (like the paper's Fig. 7): laid out by networkx, drawn
here as plain SVG elements so it needs no script, font or network, and every label is escaped text."""

from __future__ import annotations

import math

import networkx as nx

from jobs.relationship_graph import relationship_graph
from jobs.review.html import esc

WIDTH, HEIGHT, MARGIN, RADIUS = 760, 520, 80, 26


def graph_svg(people: list[dict], links: list[dict], title: str) -> str:
    g = relationship_graph(people, links)
    if not g.number_of_nodes():
        return '<p class="muted">no characters in this scope</p>'
    pos = nx.circular_layout(g) if g.number_of_nodes() <= 12 else nx.spring_layout(g, seed=7)
    xs = [p[0] for p in pos.values()] or [0.0]
    ys = [p[1] for p in pos.values()] or [0.0]

    def place(node) -> tuple[float, float]:
        x, y = pos[node]
        span_x, span_y = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
        px = MARGIN + (x - min(xs)) / span_x * (WIDTH - 2 * MARGIN)
        py = MARGIN + (y - min(ys)) / span_y * (HEIGHT - 2 * MARGIN)
        return round(px, 1), round(py, 1)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{esc(title)}"><title>{esc(title)}</title>'
    ]
    for a, b, data in g.edges(data=True):
        (x1, y1), (x2, y2) = place(a), place(b)
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2
        parts.append(
            f'<g class="edge"><line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="#888" stroke-width="1.5"/>'
            f'<text x="{mx}" y="{my - 4}" text-anchor="middle" fill="#555">{esc(data["label"])}</text></g>'
        )
    for node, data in g.nodes(data=True):
        x, y = place(node)
        label = str(data["label"])
        angle = math.atan2(y - HEIGHT / 2, x - WIDTH / 2)
        ty = y + (RADIUS + 14) * (1 if math.sin(angle) >= 0 else -1) + (4 if math.sin(angle) >= 0 else 0)
        parts.append(
            f'<g class="node" data-code="{esc(node)}"><circle cx="{x}" cy="{y}" r="{RADIUS}" fill="#9ecae1" '
            f'stroke="#3182bd"/><text x="{x}" y="{y + 4}" text-anchor="middle">{esc(node)}</text>'
            f'<text x="{x}" y="{round(ty, 1)}" text-anchor="middle" font-weight="bold">{esc(label)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)
