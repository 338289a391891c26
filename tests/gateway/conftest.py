"""What the gateway tests share: the small play the simulator answers from, and one 30 s segment proxy of it."""

from __future__ import annotations

import pytest

from tests.support.play import make_proxy, segment_provenance, small_screenplay


@pytest.fixture(scope="module")
def play():
    return small_screenplay()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    return make_proxy(tmp_path_factory.mktemp("proxy") / "seg1.mp4", segment_provenance(1, 0.0, 30.0))
