"""The taxonomy's structural prediction against the simulation, on every built-in
preset: a mode that ``silent_modes`` predicts silent (no deployed detector that can
see it survives the constraints) is never detected in simulation, whether the server
deploys every detector its access allows or only the standard ones.

Where they differ, it is in one direction only, and for a documented reason: a mode the
taxonomy calls *visible* can still be silent in simulation, because the taxonomy
reasons about access, not power. A surviving detector may be too weak (DP noise on a
secure sum of few reports, a mean that hides a worst-decile failure, a null that fails
too) to alarm in time. That statistical silence is what the phase diagrams measure; the
test records it and asserts that visibility is realized somewhere.

Scope: the simulation counts an alarm of a channel that watches a mode, and some
channels see only the global model (the taxonomy's ``detects`` edges with scope
``global``: the server's probe evaluation, the update-direction monitor, CUSUM). So the
structural claim checked exactly is silence at both scopes (no surviving detector sees
the mode at all). The stricter ``deployed``-scope prediction
(no surviving detector sees the personalized models) can be contradicted in
simulation, and the test checks that every such case is a global-scope alarm that
co-occurred with the deployed failure, never a deployed-scope detector the taxonomy
says is blocked.
"""

from __future__ import annotations

import numpy as np
import pytest

from silentfail.constraints import scenario_constraints
from silentfail.sim import clear_caches
from silentfail.sim.scenario import MODES, preset, preset_names
from silentfail.sim.sweep import sweep
from silentfail.taxonomy import STANDARD_DETECTORS, builtin_taxonomy, silent_modes

TAX = builtin_taxonomy()
SHRINK = {"population.num_clients": 120, "federation.clients_per_round": 30, "federation.participation": 0.5,
          "federation.rounds": 15, "monitor.calibration_seeds": 80}
SEEDS = 4
RESULTS: dict[str, dict] = {}


def predicted_silent(constraints: tuple[str, ...], detectors: list[str], scope: str) -> set[str]:
    return {s.mode for s in silent_modes(TAX, constraints, detectors, scope=scope)}


def detects_scope(detector: str, mode: str) -> str | None:
    for e in TAX.out_edges(detector, "detects"):
        if e.target == mode:
            return e.scope
    return None


def detected_given_fail(ds, detectors: list[str]) -> dict[str, float]:
    """P(detected | fail) per mode when only ``detectors`` are deployed, from the per-run
    detection rounds of every channel (they do not depend on the other detectors)."""
    grace = ds.attrs["grace"]
    out = {}
    for m in MODES:
        t_f = ds["failure_round"].sel(mode=m).values
        rounds = ds["detection_round"].sel(mode=m, detector=detectors).values if detectors else np.full(t_f.shape + (0,), -1)
        hit = ((rounds >= 0) & (rounds <= t_f[..., None] + grace)).any(-1) & (t_f >= 0)
        n_fail = int((t_f >= 0).sum())
        out[m] = float(hit.sum() / n_fail) if n_fail else float("nan")
    return out


@pytest.fixture(autouse=True)
def _one_preset_at_a_time():
    yield
    clear_caches()  # every preset compiles its own program


@pytest.mark.parametrize("name", [n for n in preset_names() if n != "phase"])
def test_structural_silence_holds_in_simulation(name):
    sc = preset(name)
    # central DP has no report slots: q = 0.25 of 120 clients gives the ~30 reports of the slots
    dp = {"federation.clients_per_round": 120, "federation.participation": 0.25} if sc.federation.dp == "central" else {}
    sc = sc.replace(**{**SHRINK, **dp})
    ds = sweep(sc, {}, seeds=SEEDS, chunk=64)
    cons = scenario_constraints(sc)
    deployed = [str(d) for d in ds.detector.values]
    for label, dets in (("all allowed", deployed), ("standard", [d for d in deployed if d in STANDARD_DETECTORS])):
        silent = predicted_silent(cons, dets, "global") & predicted_silent(cons, dets, "deployed")
        det = detected_given_fail(ds, dets)
        for m in MODES:
            if m in silent:
                assert not det[m] > 0, (name, label, m, "predicted silent but detected")
        for m in predicted_silent(cons, dets, "deployed") - silent:
            # only global-scope channels can catch what the deployed-scope prediction calls silent
            for d in dets:
                if (ds["detection_round"].sel(mode=m, detector=d) >= 0).any():
                    assert detects_scope(d, m) == "global", (name, label, m, d)
        RESULTS[f"{name} / {label}"] = {m: (m in silent, det[m], float(ds["p_fail"].sel(mode=m))) for m in MODES}

def test_visibility_is_realized_somewhere():
    """Runs after the presets: some mode the taxonomy calls visible is in fact caught
    most of the time it fails, and some is statistically silent despite being visible
    (power, not access) - both regimes exist."""
    if not RESULTS:
        pytest.skip("run with the preset tests")
    visible = [(k, m, d) for k, row in RESULTS.items() for m, (sil, d, pf) in row.items() if not sil and pf > 0]
    assert any(d >= 0.5 for _, _, d in visible), visible
    assert any(d < 0.5 for _, _, d in visible), visible
