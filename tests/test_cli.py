"""The CLI: exit codes, one-line errors, help with examples."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from silentfail.cli import main

DATA = Path(__file__).resolve().parent / "data"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["taxonomy", "--help"],
        ["taxonomy", "query", "--help"],
        ["taxonomy", "show", "--help"],
        ["taxonomy", "export", "--help"],
        ["taxonomy", "validate", "--help"],
        ["cite", "--help"],
        ["taxonomy", "query", "silent", "--help"],
        ["taxonomy", "query", "coverage", "--help"],
        ["simulate", "--help"],
        ["phase", "--help"],
        ["report", "--help"],
        ["prove", "--help"],
        ["estimate", "--help"],
        ["check", "--help"],
        ["literature", "--help"],
        ["paper", "--help"],
    ],
)
def test_every_help_has_an_example(capsys, argv):
    code, out, _ = run(capsys, *argv)
    assert code == 0
    assert "Example: silentfail" in out


def test_query_silent(capsys):
    code, out, _ = run(
        capsys,
        "taxonomy",
        "query",
        "silent",
        "-c",
        "secure_aggregation,no_personal_model_access",
        "-d",
        "aggregate_monitor,server_probe_eval,update_direction_monitor",
        "--scope",
        "deployed",
    )
    assert code == 0
    assert "alignment_erosion" in out and "no_personal_model_access" in out


def test_unknown_constraint_is_one_line_exit_2(capsys):
    code, out, err = run(capsys, "taxonomy", "query", "silent", "-c", "secure_aggregaton")
    assert code == 2
    assert err.startswith("error: unknown constraint 'secure_aggregaton'")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_debug_shows_the_traceback(capsys):
    from silentfail.taxonomy import SchemaError

    with pytest.raises(SchemaError):
        main(["--debug", "taxonomy", "query", "causes", "not_a_mode"])


def test_usage_error_exits_non_zero(capsys):
    code, _, err = run(capsys, "taxonomy", "query", "paths", "label_shift")
    assert code == 2 and "Missing argument" in err


def test_validate_builtin_and_broken_file(capsys):
    code, out, _ = run(capsys, "taxonomy", "validate")
    assert code == 0 and "no violations" in out
    code, _, err = run(capsys, "taxonomy", "validate", str(DATA / "broken_extension.toml"))
    assert code == 1
    assert "[mistyped-edge]" in err and "[dangling-edge]" in err and "violation(s)" in err


def test_extension_file_is_usable_by_every_query(capsys):
    code, out, _ = run(
        capsys, "taxonomy", "query", "detectors", "memorization", "-f", str(DATA / "good_extension.json")
    )
    assert code == 0 and "central_audit" in out
    code, _, err = run(capsys, "taxonomy", "show", "-f", str(DATA / "broken_extension.toml"))
    assert code == 2 and "violation(s)" in err


def test_export_json_to_stdout_round_trips(capsys):
    from silentfail.taxonomy import builtin_taxonomy
    from silentfail.taxonomy.export import from_node_link

    code, out, _ = run(capsys, "taxonomy", "export", "--format", "json")
    assert code == 0
    assert from_node_link(json.loads(out)) == builtin_taxonomy()


def test_export_figure_needs_output(capsys, tmp_path):
    code, _, err = run(capsys, "taxonomy", "export", "--format", "png")
    assert code == 2 and "needs an output file" in err
    code, _, _ = run(capsys, "taxonomy", "export", "--format", "svg", "-o", str(tmp_path / "t.svg"))
    assert code == 0 and (tmp_path / "t.svg").exists()


def test_show_node_and_bad_kind(capsys):
    code, out, _ = run(capsys, "taxonomy", "show", "Ditto")
    assert code == 0 and "proximal" in out
    code, _, err = run(capsys, "taxonomy", "show", "--kind", "gadget")
    assert code == 2 and "unknown kind 'gadget'" in err


def test_cite(capsys):
    code, out, _ = run(capsys, "cite", "proximal", "alignment_erosion")
    assert code == 0
    for key in ("@software{silentfail", "oh2026silent", "li2021ditto", "dinh2020personalized", "qi2024fine"):
        assert key in out
    assert out.count("@inproceedings{oh2026silent") == 1
    code, _, err = run(capsys, "cite", "nonexistent_node")
    assert code == 2 and "no node with id, name or alias 'nonexistent_node'" in err


def test_queries_print_tables(capsys):
    for argv in (
        ["coverage"],
        ["benchmarks"],
        ["divide"],
        ["causes", "fairness_collapse"],
        ["paths", "label_shift", "confidence_miscalibration"],
    ):
        code, out, _ = run(capsys, "taxonomy", "query", *argv)
        assert code == 0 and out.strip(), argv
    code, out, _ = run(capsys, "taxonomy", "query", "divide")
    assert "No benchmark both covers a mode directly" in out


def test_console_script_is_installed():
    exe = shutil.which("silentfail") or str(Path(sys.executable).parent / "silentfail")
    proc = subprocess.run([exe, "taxonomy", "query", "causes", "bogus"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip() == "error: unknown failure mode 'bogus'; known: amplified_bias, "
        "confidence_miscalibration, fairness_collapse, adaptation_misalignment, out_of_domain_degradation, alignment_erosion"
    )


SMALL_SET = [
    "--set",
    "population.num_clients=60",
    "--set",
    "federation.clients_per_round=10",
    "--set",
    "federation.rounds=4",
    "--set",
    "population.ood_subset=4",
]


def test_simulate_prints_the_whole_privacy_accounting(capsys, tmp_path):
    """epsilon, delta, the adjacency, the sampling and the accounted releases, in the
    terminal and in the report of the saved trace."""
    small = [
        "--set",
        "population.num_clients=60",
        "--set",
        "federation.clients_per_round=60",
        "--set",
        "federation.rounds=4",
        "--set",
        "population.ood_subset=4",
        "--set",
        "federation.participation_disparity=0",
    ]
    code, out, _ = run(capsys, "simulate", "--preset", "phase", *small, "--no-verdict", "-o", str(tmp_path / "t.nc"))
    flat = " ".join(out.split())
    assert code == 0
    for text in (
        "DP (central): epsilon =",
        "at delta = 1e-05",
        "adjacency add_or_remove_one_client",
        "Poisson sampling, q = max_c q_c (1 - dropout) = 0.34, no report slots",
        "4 rounds of 5 releases (noised_update_sum, aggregate_metrics, group_stratified_metrics, federated_eval_reports, "
        "participant_counts)",
        "count: released with N(0, 0.5^2) noise and accounted",
    ):
        assert text in flat, text
    code, _, err = run(capsys, "simulate", "--preset", "phase", "--set", "population.num_clients=60", "--no-verdict")
    assert code == 2 and "federation.clients_per_round (300) must equal population.num_clients (60)" in err


def test_simulate_prints_a_mode_table_and_writes_the_trace(capsys, tmp_path):
    from silentfail.sim.trace import load_trace

    out_file = tmp_path / "trace.nc"
    code, out, _ = run(capsys, "simulate", "--preset", "label-shift", "--seed", "2", *SMALL_SET, "-o", str(out_file))
    assert code == 0
    for m in ("amplified_bias", "alignment_erosion", "threshold"):
        assert m in out
    tr = load_trace(out_file)
    assert tr.attrs["seed"] == 2 and tr.attrs["scenario_name"] == "label-shift"
    assert "verdict (alpha 0.05" in out and "federated_evaluation" in out  # the detectors' verdict table
    code, out2, _ = run(
        capsys, "simulate", "--preset", "label-shift", "--seed", "2", *SMALL_SET, "--client-chunk", "16"
    )
    assert code == 0 and out2.split("DP:")[0] == out.split("DP:")[0]  # blocks of 16 clients: the same mode table
    code, out, _ = run(capsys, "simulate", "--preset", "label-shift", *SMALL_SET, "--seeds", "3", "--no-verdict")
    assert code == 0 and "across 3 seeds" in out and "P(detected | fail)" in out
    code, out, _ = run(capsys, "report", str(out_file), "-o", str(tmp_path / "run.md"))
    assert code == 0 and "verdict" in out
    md = (tmp_path / "run.md").read_text()
    assert "## Verdict" in md and "data:image/png;base64," in md  # self-contained: the figure is embedded


def test_simulate_lists_presets(capsys):
    code, out, _ = run(capsys, "simulate", "--list-presets")
    assert code == 0 and "poisoned-clients" in out and "teacher-bias" in out


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["simulate", "--preset", "nope"], "error: unknown preset 'nope'"),
        (
            ["simulate", "--set", "personalization.eta=-1"],
            "error: invalid scenario: personalization.eta: Input should be greater than 0",
        ),
        (["simulate", "--set", "federation.roundz=3"], "error: unknown scenario field 'federation.roundz'"),
        (["simulate", "--set", "rounds"], "error: --set expects FIELD=VALUE"),
        (["simulate", "missing.toml"], "error: scenario file 'missing.toml' does not exist"),
        (
            ["simulate", "--client-chunk", "0"],
            "error: --client-chunk expects a positive integer, 'auto' or 'none', got '0'",
        ),
        (["simulate", "--devices", "64"], "error: devices = 64 but only"),
    ],
)
def test_simulate_bad_input_is_one_line(capsys, argv, needle):
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.startswith(needle) and len(err.strip().splitlines()) == 1


def test_prove_prints_latex_and_verifies(capsys, tmp_path):
    code, out, _ = run(capsys, "prove", "masking", "--verify")
    assert code == 0 and "1 - π" in out and "relative error" in out and "NO" not in out
    out_file = tmp_path / "thm.tex"
    code, _, _ = run(capsys, "prove", "--latex", "-o", str(out_file))
    assert code == 0 and "\\label{eq:ditto}" in out_file.read_text()
    code, _, err = run(capsys, "prove", "nonsense")
    assert code == 2 and "unknown result(s) nonsense" in err
    code, _, err = run(capsys, "prove", "-o", str(out_file))
    assert code == 2 and "--output needs --latex" in err


def test_cite_a_scenario_cites_what_it_exercises(capsys):
    code, out, _ = run(capsys, "cite", "--preset", "dp-heavy")
    assert code == 0
    # central DP, secure aggregation, attribute imbalance, partial participation, Ditto, the modes' metrics
    for key in (
        "mcmahan2018learning",
        "dong2022gaussian",
        "bonawitz2017practical",
        "yang2023change",
        "mcmahan2017communication",
        "li2021ditto",
        "wang2021directional",
    ):
        assert key in out, key
    assert "blanchard2017machine" not in out and "li2024position" not in out  # no Byzantine clients, no disparity
    code, out, _ = run(capsys, "cite", "--preset", "poisoned-clients")
    assert "blanchard2017machine" in out
    code, out, _ = run(capsys, "cite", "--preset", "participation-disparity")
    assert "li2024position" in out
    code, _, err = run(capsys, "cite", "--preset", "x", "--scenario", "y.toml")
    assert code == 2 and "not both" in err


TINY_PHASE = [
    "--preset",
    "phase",
    "--set",
    "population.num_clients=40",
    "--set",
    "federation.clients_per_round=40",
    "--set",
    "federation.participation=0.5",
    "--set",
    "federation.rounds=8",
    "--set",
    "monitor.calibration_seeds=80",
]


def test_phase_draws_the_diagram_and_resumes(capsys, tmp_path):
    out_dir = tmp_path / "ph"
    argv = [
        "phase",
        *TINY_PHASE,
        "--x",
        "personalization.lam=log:0.01:1:2",
        "--y",
        "shifts.strength=0,1",
        "--seeds",
        "3",
        "-o",
        str(out_dir),
    ]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    for name in ("phase.pdf", "phase.png", "report.md", "store/sweep.nc", "store/manifest.json"):
        assert (out_dir / name).is_file(), name
    assert "mean P(silent)" in out and "achieved false-alarm rate" in out
    assert (out_dir / "phase.pdf").read_bytes().startswith(b"%PDF")
    md = (out_dir / "report.md").read_text()
    assert "## What failed, what was caught, what stayed silent" in md and "data:image/png;base64," in md
    assert "constraints in force: central_dp, no_personal_model_access, no_raw_data_access" in md  # the whole set
    from silentfail.figures import setting_caption
    from silentfail.sim.trace import read_dataset

    caption = setting_caption(read_dataset(out_dir / "store" / "sweep.nc", ("sweep",))[1])
    assert (
        caption.startswith("constraints: central_dp, no_personal_model_access, no_raw_data_access")
        and "T_f + 5]" in caption
    )
    code, _, err = run(capsys, *argv)
    assert code == 2 and "--resume" in err  # never overwrites a finished sweep silently
    code, _, err = run(capsys, *argv, "--resume")
    assert code == 0, err
    code, out, _ = run(capsys, "report", str(out_dir))
    assert code == 0 and "mean P(fail)" in out


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["phase", "--x", "personalization.lam=1:2"], "error: --x: cannot read '1:2'"),
        (
            ["phase", "--x", "personalization.lam=0.1,1", "--y", "personalization.lam=1,2"],
            "error: --x and --y sweep the same field",
        ),
        (["phase", "--constraints", "secure_aggregation,no_such"], "error: unknown constraint(s) ['no_such']"),
        (
            ["phase", "--constraints", "local_dp"],
            "error: constraint 'local_dp' is physics the scenario must set: use federation.dp = 'local'",
        ),
        (["phase", "--alpha", "1.5"], "error: invalid scenario: monitor.alpha"),
        (["phase", "--x", "federation.roundz=1,2"], "error: unknown scenario field 'federation.roundz'"),
    ],
)
def test_phase_bad_input_is_one_line(capsys, tmp_path, argv, needle):
    code, _, err = run(capsys, *argv, "-o", str(tmp_path / "x"))
    assert code == 2 and err.startswith(needle), err


def test_estimate_fits_the_boundaries_of_a_phase_sweep(capsys, tmp_path):
    ph = tmp_path / "ph"
    code, _, err = run(
        capsys,
        "phase",
        *TINY_PHASE,
        "--x",
        "personalization.lam=log:0.01:1:3",
        "--y",
        "shifts.strength=0:1:3",
        "--seeds",
        "3",
        "-o",
        str(ph),
    )
    assert code == 0, err
    est = tmp_path / "est"
    code, out, err = run(
        capsys,
        "estimate",
        str(ph),
        "-o",
        str(est),
        "--modes",
        "confidence_miscalibration,alignment_erosion",
        "--chains",
        "2",
        "--warmup",
        "150",
        "--samples",
        "150",
    )
    assert code == 0, err
    for name in ("estimate.nc", "diagnostics.md", "boundary_fail.pdf", "boundary_fail.png", "boundary_silent.png"):
        assert (est / name).is_file(), name
    assert "R-hat" in out and "fits flagged" in err
    assert "Posterior phase boundaries" in (est / "diagnostics.md").read_text()
    code, _, err = run(capsys, "estimate", str(ph), "-o", str(est), "--model", "spline9")
    assert code == 2 and err.startswith("error: unknown model 'spline9'"), err


def test_check_reports_the_posterior_probability_and_where_it_fails(capsys, tmp_path):
    code, out, err = run(
        capsys,
        "check",
        "for all lambda <= 0.1, P(silent fairness collapse) >= 0.9 under secure aggregation",
        *TINY_PHASE,
        "--seeds",
        "3",
        "--points",
        "2",
        "-o",
        str(tmp_path / "chk"),
    )
    assert code == 0, err
    assert "P(holds) = " in out and (tmp_path / "chk" / "cells.nc").is_file()
    code, _, err = run(capsys, "check", "for all lambda <= 0.1, P(silent nonsense) >= 0.9", *TINY_PHASE)
    assert code == 2 and err.startswith("error: unknown mode in P(silent nonsense)"), err


def test_literature_lists_runs_and_reports_claims(capsys, tmp_path):
    code, out, _ = run(capsys, "literature", "--list")
    assert code == 0 and "adaptive_switching" in out and "dp_minority_price" in out
    code, out, err = run(capsys, "literature", "-c", "synthetic_bias", "--seeds", "2", "-o", str(tmp_path))
    assert code == 0, err
    assert "Bias transmission (synthetic data)" in out and "yes" in out
    assert (tmp_path / "claims" / "synthetic_bias.nc").exists() and (tmp_path / "claims.pdf").exists()
    assert "FM-generated synthetic data" in (tmp_path / "literature.md").read_text()
    code, _, err = run(capsys, "literature", "-c", "no_such_claim")
    assert code == 2 and "unknown literature claim 'no_such_claim'" in err and len(err.strip().splitlines()) == 1


def test_paper_without_a_source_is_one_line(capsys, tmp_path):
    code, _, err = run(capsys, "paper", "--quick", "--source", str(tmp_path), "-o", str(tmp_path / "out"))
    assert code != 0 and "no main.tex" in err and len(err.strip().splitlines()) == 1


def test_a_diverging_seed_is_named_and_left_out_of_the_summary(capsys):
    """eta * lambda_max crosses 2 for two of eight seeds: the summary says so and is over
    the other six, instead of printing '-' for every mode."""
    small = [
        "--set",
        "population.num_clients=40",
        "--set",
        "federation.clients_per_round=10",
        "--set",
        "federation.rounds=4",
        "--set",
        "population.ood_subset=4",
        "--set",
        "monitor.calibration_seeds=40",
        "--set",
        "monitor.alpha=0.2",
        "--set",
        "personalization.eta=0.0565",
        "--set",
        "shifts.covariate_var_spread=0.3",
    ]
    code, out, err = run(capsys, "simulate", "--preset", "covariate-shift", *small, "--seeds", "8", "--no-verdict")
    assert code == 0, err
    assert "diverged in 2 of 8 seeds (1, 2): eta * lambda_max = 2.18 > 2" in " ".join(err.split())
    row = next(line for line in out.splitlines() if "amplified_bias" in line and "│" in line)
    cells = [c.strip() for c in row.split("│") if c.strip()]
    assert cells[1] != "-"  # P(fail) over the six stable seeds
    assert "constraints in force:" in out and "detectors deployed:" in out


def test_fields_lists_every_field_of_a_section_and_refuses_an_unknown_one(capsys):
    code, out, _ = run(capsys, "fields", "thresholds")
    assert code == 0
    flat = " ".join(out.split())
    assert "thresholds.persist" in flat and "thresholds.fairness_metric" in flat and "monitor.alpha" not in flat
    code, _, err = run(capsys, "fields", "nosuch")
    assert code == 2 and err.startswith("error: unknown section 'nosuch'") and len(err.strip().splitlines()) == 1


def test_compilation_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    from silentfail.cli import compilation_cache_dir

    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.delenv("SILENTFAIL_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compilation_cache_dir() == tmp_path / "silentfail" / "jax"
    monkeypatch.setenv("SILENTFAIL_CACHE_DIR", str(tmp_path / "mine"))
    assert compilation_cache_dir() == tmp_path / "mine"
    monkeypatch.setenv("SILENTFAIL_CACHE_DIR", "")
    assert compilation_cache_dir() is None  # switched off
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "theirs"))
    monkeypatch.delenv("SILENTFAIL_CACHE_DIR")
    assert compilation_cache_dir() is None  # the user's own JAX cache is left alone


def test_simulate_fills_the_persistent_compilation_cache(tmp_path):
    """A second simulate of the same scenario finds its compiled programs on disk."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("JAX_PERSISTENT") and k != "JAX_COMPILATION_CACHE_DIR"
    }
    env["SILENTFAIL_CACHE_DIR"] = str(tmp_path / "cache")
    args = [
        sys.executable,
        "-m",
        "silentfail",
        "simulate",
        "--no-verdict",
        "--set",
        "population.num_clients=30",
        "--set",
        "federation.clients_per_round=30",
        "--set",
        "federation.rounds=3",
    ]
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    entries = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert entries, "no compiled program was cached"
    again = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert again.returncode == 0 and again.stdout == proc.stdout  # same numbers from the cached programs
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == entries  # nothing new compiled


@pytest.mark.parametrize("models", ["linear,cnn", "mlp"])
def test_transfer_rejects_bad_models_in_one_line(capsys, models):
    code, _, err = run(capsys, "transfer", "--models", models, "--no-phase", "-c", "byzantine")
    assert code == 2 and err.startswith("error: --models") and len(err.strip().splitlines()) == 1, err


def test_literature_takes_set_and_says_which_claims_it_skips(capsys, tmp_path):
    small = ["population.num_clients=40", "federation.clients_per_round=20", "federation.rounds=4"]
    mlp = ["model.kind=mlp", "population.mode=finite", "model.eval_samples=16", "model.pretrain_steps=50"]
    args = ["literature", "-c", "byzantine,teacher_bias", "-s", "2", "-o", str(tmp_path)]
    code, out, err = run(capsys, *args, *(a for kv in small + mlp for a in ("--set", kv)))
    assert code == 0, err
    assert "skipped teacher_bias: personalization.rule" in err  # the teacher is the linear readout's
    assert (tmp_path / "claims" / "byzantine.nc").exists() and not (tmp_path / "claims" / "teacher_bias.nc").exists()
    import xarray as xr

    ds = xr.load_dataset(tmp_path / "claims" / "byzantine.nc", engine="h5netcdf")
    assert '"kind": "mlp"' in ds.attrs["scenario"]
    code, _, err = run(capsys, "literature", "-c", "teacher_bias", "--set", "model.kind=mlp", "-o", str(tmp_path))
    assert code == 2 and "no claim can run" in err
