"""The small screenplay and tagged proxies of tests/support/play.py are what the simulator tests take them for."""

from __future__ import annotations

from annotator.media import read_provenance
from tests.support.play import (
    ADA_COAT,
    ADA_RAINCOAT,
    make_proxy,
    segment_provenance,
    small_screenplay,
)


def test_small_screenplay_has_the_traits_the_simulator_tests_rely_on():
    play = small_screenplay()
    assert [s for s in play.scene_spans()] == [(0.0, 30.0), (30.0, 60.0), (60.0, 90.0)]
    ada, ben = play.member("Ada Marsh"), play.member("Ben Okafor")
    assert ada.appearance_at(59) == ADA_COAT and ada.appearance_at(60) == ADA_RAINCOAT
    assert not ben.named_by(49) and ben.named_by(50)


def test_proxy_carries_its_provenance(tmp_path):
    tag = segment_provenance(2, 30, 60)
    path = make_proxy(tmp_path / "p.mp4", tag)
    assert read_provenance(path) == tag
    assert read_provenance(path.read_bytes()) == tag
    assert read_provenance(make_proxy(tmp_path / "bare.mp4", None)) is None
