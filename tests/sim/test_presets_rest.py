"""The second half of the presets' promises (``tests/sim/test_presets.py`` checks the
first half and holds the check): two modules, so that the two test workers share the ten
full-size preset sweeps."""

from __future__ import annotations

import pytest

from silentfail.sim.scenario import preset_names
from tests.sim.test_presets import FIRST_HALF, SECOND_HALF, check_promise


def test_the_two_halves_cover_every_preset_once():
    assert sorted(FIRST_HALF + SECOND_HALF) == sorted(preset_names())
    assert not set(FIRST_HALF) & set(SECOND_HALF)


@pytest.mark.default_compiler
@pytest.mark.parametrize("name", SECOND_HALF)
def test_the_preset_keeps_its_promise_over_8_seeds_and_agrees_with_the_graph(name):
    check_promise(name)
