"""`v2s profiles graph` writes its DOT file with networkx's pydot writer, and names from a model survive it:
quotes, backslashes, things that look like HTML labels or DOT keywords. Read back by pydot's parser (the
DOT grammar networkx's reader uses) and by networkx's `read_dot`."""

from __future__ import annotations

import networkx as nx
import pydot
import pytest
from typer.testing import CliRunner

from jobs.cli import app
from jobs.relationship_graph import dot_quote, dot_unquote, relationship_graph, write_dot
from profiles_db.cpm import CharacterProfileManager
from tests.support.db import make_video, plot_answer

SKIPPER = 'Tomas "Skipper" Reyes'
MARA = "Mara \\ Quinn"  # one backslash
LABEL = 'calls him "boss" \\ pays her'

HOSTILE = [
    SKIPPER,
    MARA,
    "C:\\films\\Nadia",  # \f and \N would be escapes to Graphviz
    "ends with \\",
    '"all quoted"',
    "<b>html-like</b>",
    "graph",
    'a\\"b',
    "two\nlines",
    "Zoë Ørsted",
]


def read_labels(path) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    (parsed,) = pydot.graph_from_dot_file(str(path))
    nodes = {dot_unquote(n.get_name()): dot_unquote(n.get("label")) for n in parsed.get_nodes()}
    nodes = {k: v for k, v in nodes.items() if k not in ("node", "edge", "graph")}
    edges = [
        (dot_unquote(e.get_source()), dot_unquote(e.get_destination()), dot_unquote(e.get("label")))
        for e in parsed.get_edges()
    ]
    return nodes, edges


def test_any_label_survives_the_dot_file(tmp_path):
    people = [{"code": f"char_{i:03d}", "name": name} for i, name in enumerate(HOSTILE, 1)]
    links = [{"a_code": "char_001", "b_code": "char_002", "label": LABEL}]
    path = tmp_path / "g.dot"
    write_dot(relationship_graph(people, links), path, 'characters of "the show" \\ s1')
    nodes, edges = read_labels(path)
    assert nodes == {p["code"]: p["name"] for p in people}
    assert edges == [("char_001", "char_002", LABEL)]
    (parsed,) = pydot.graph_from_dot_file(str(path))
    assert dot_unquote(parsed.get("label")) == 'characters of "the show" \\ s1'
    back = nx.nx_pydot.read_dot(path)  # networkx's own reader parses it too
    assert {dot_unquote(n) for n in back.nodes} == set(nodes)


@pytest.mark.parametrize("text", HOSTILE)
def test_quoting_round_trips(text):
    assert dot_unquote(dot_quote(text)) == text


def test_profiles_graph_writes_names_intact(database, tmp_path):
    segs = make_video(database, scope="harbour", segments=1)
    CharacterProfileManager(database).apply(
        "harbour",
        segs[0],
        plot_answer(
            1,
            [{"id": "char_001", "name": SKIPPER}, {"id": "char_002", "name": MARA}],
            relationships=[
                {"char1_id": "char_001", "char2_id": "char_002", "relationship": LABEL, "evidence": "x"}
            ],
        ),
    )
    picture = tmp_path / "graph" / "cast.png"
    done = CliRunner().invoke(
        app,
        ["profiles", "graph", "--database-url", database.url, "--out", str(picture)],
        env={"COLUMNS": "300"},
    )
    assert done.exit_code == 0, done.output
    assert picture.stat().st_size > 1000
    nodes, edges = read_labels(picture.with_suffix(".dot"))
    assert nodes == {"char_001": SKIPPER, "char_002": MARA}
    assert [label for _, _, label in edges] == [LABEL]
