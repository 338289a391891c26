"""The relationship graph of one scope (`v2s profiles graph`): a networkx graph, its DOT file and a picture.

The DOT file is written by networkx's pydot writer (pure Python: no Graphviz binary is needed to write it).
pydot leaves a value alone when it already looks quoted ("…") or like an HTML label (<…>), and never escapes
a backslash, so every label is quoted here, first: names come from a model and may hold anything
(`Tomas "Skipper" Reyes`, `C:\\films`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import networkx as nx


def dot_quote(value: str) -> str:
    """A DOT quoted string whose label reads back as `value`: in a quoted string DOT unescapes only \\", and
    Graphviz reads a label's \\\\ as one backslash and \\n as a line break (its escString)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\r\n", "\n").replace("\n", "\\n")
    return f'"{escaped}"'


def dot_unquote(value: str) -> str:
    """The label text of a quoted DOT string (the inverse of `dot_quote`), as Graphviz would draw it."""
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return value
    out, chars = [], iter(value[1:-1])
    for char in chars:
        if char != "\\":
            out.append(char)
            continue
        nxt = next(chars, "")
        out.append({"n": "\n", '"': '"', "\\": "\\"}.get(nxt, "\\" + nxt))
    return "".join(out)


def relationship_graph(people: list[dict[str, Any]], links: list[dict[str, Any]]) -> nx.Graph:
    """Nodes: canonical codes labelled with the name; edges: the relationships (labels joined with " / ")."""
    g = nx.Graph()
    for p in people:
        g.add_node(p["code"], label=p["name"] or p["code"])
    for r in links:
        a, b = r["a_code"], r["b_code"]
        label = r["label"] if not g.has_edge(a, b) else g.edges[a, b]["label"] + " / " + r["label"]
        g.add_edge(a, b, label=label)
    return g


def write_dot(g: nx.Graph, path: Path, title: str) -> None:
    """The graph as DOT, every label (and the title) quoted so that it survives any text."""
    quoted = nx.Graph()
    quoted.graph["graph"] = {"label": dot_quote(title)}
    for node, data in g.nodes(data=True):
        # codes are plain identifiers (char_001), but a name that is a bare DOT keyword must be quoted too
        quoted.add_node(dot_quote(str(node)), label=dot_quote(str(data["label"])))
    for a, b, data in g.edges(data=True):
        quoted.add_edge(dot_quote(str(a)), dot_quote(str(b)), label=dot_quote(str(data["label"])))
    nx.nx_pydot.write_dot(quoted, path)


def draw(g: nx.Graph, path: Path, title: str) -> None:
    """A picture (.png, .svg) with matplotlib, laid out by networkx: no Graphviz either."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def plain(text: str) -> str:  # matplotlib reads $…$ as mathematics: a name such as "$ally" stays text
        return text.replace("$", r"\$")

    fig, ax = plt.subplots(figsize=(8, 6))
    pos = nx.spring_layout(g, seed=7)
    nx.draw_networkx(
        g,
        pos,
        ax=ax,
        labels={n: plain(label) for n, label in nx.get_node_attributes(g, "label").items()},
        node_color="#9ecae1",
        node_size=1800,
        font_size=9,
    )
    nx.draw_networkx_edge_labels(
        g,
        pos,
        ax=ax,
        edge_labels={e: plain(label) for e, label in nx.get_edge_attributes(g, "label").items()},
        font_size=7,
    )
    ax.set_axis_off()
    ax.set_title(plain(title))
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
