"""The reference paper (paper/, silentfail/paper.py): the quick build succeeds and its
pages render; every number in the text is a generated macro that matches the value
recomputed from code; the bibliography is the code's."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from silentfail import paper
from silentfail.bench import PEERS

HAVE_TEX = all(shutil.which(t) for t in ("latexmk", "pdflatex", "pdftoppm"))


def _need_tex():
    if not HAVE_TEX:
        if os.environ.get("CI"):  # CI installs TeX Live (.ci/run): its absence there is a failure
            pytest.fail(f"the TeX toolchain is missing: apt-get install {' '.join(paper.TEX_PACKAGES)}")
        pytest.skip("latexmk / pdflatex / pdftoppm not installed")


@pytest.fixture(scope="module")
def quick_paper(tmp_path_factory, claim_results):
    _need_tex()
    return paper.build(tmp_path_factory.mktemp("paper"), quick=True, claims=claim_results)


def test_quick_build_produces_a_pdf_whose_pages_render(quick_paper, tmp_path):
    pdf = quick_paper / "main.pdf"
    assert pdf.stat().st_size > 50_000
    subprocess.run(["pdftoppm", "-r", "50", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 6
    import matplotlib.image as mpimg

    for p in pages:  # every page rendered with something on it (not blank), nothing off its edges
        img = mpimg.imread(p)[..., :3]
        assert img.shape[0] > 400 and (img.mean(-1) < 0.9).mean() > 0.005, p.name
        assert paper.edge_ink(img, int(0.04 * min(img.shape[:2]))) == 0, f"{p.name}: content runs into the margin"
    figures = sorted((quick_paper / "generated").glob("*.png"))
    assert len(figures) >= 7
    for f in figures:  # no figure clipped by its canvas (tight bounding boxes leave a white rim)
        assert paper.edge_ink(mpimg.imread(f), 2) == 0, f"{f.name} is clipped at its edge"
    assert not _log_problems((quick_paper / "main.log").read_text(errors="replace"))


def _log_problems(log: str) -> list[str]:
    """Overfull boxes and undefined citations or references in a LaTeX log."""
    overfull = re.findall(r"Overfull \\hbox \(([\d.]+)pt too wide\)", log)
    return (
        ([f"{len(overfull)} overfull boxes, widest {max(map(float, overfull)):.1f}pt"] if overfull else [])
        + re.findall(r"Citation `[^']+' .*undefined", log)
        + re.findall(r"Reference `[^']+' .*undefined", log)
    )


def test_the_log_check_reads_overfull_boxes_and_undefined_references():
    log = (
        "Overfull \\hbox (12.5pt too wide) in paragraph at lines 3--4\n"
        "LaTeX Warning: Citation `doe2020' on page 1 undefined on input line 7.\n"
        "LaTeX Warning: Reference `sec:x' on page 2 undefined on input line 9.\n"
    )
    assert _log_problems(log) == [
        "1 overfull boxes, widest 12.5pt",
        "Citation `doe2020' on page 1 undefined",
        "Reference `sec:x' on page 2 undefined",
    ]
    assert _log_problems("Underfull \\hbox (badness 10000)\n") == []


def test_the_full_builds_text_typesets_without_overfull_boxes(quick_paper, tmp_path):
    """The full build's generated text (``silentfail paper`` writes it to paper/generated/,
    where it is committed: its numbers are wider than the quick build's) set with the
    quick build's figures: 0 overfull boxes, nothing undefined. The record must define
    what this code generates: the same files and the same macros as the quick build."""
    full = paper.SOURCE / "generated"
    names = sorted(p.name for p in (quick_paper / "generated").glob("*.tex"))
    assert sorted(p.name for p in full.glob("*.tex")) == names, "paper/generated/ is stale: run `silentfail paper`"
    assert set(paper.read_numbers(full / "numbers.tex")) == set(
        paper.read_numbers(quick_paper / "generated" / "numbers.tex")
    ), "paper/generated/numbers.tex is stale: run `silentfail paper`"
    work = tmp_path / "full"
    shutil.copytree(quick_paper, work)
    for name in set(names) - {"taxonomy_table.tex"}:  # committed as the CLI's export, which the build fits to the page
        shutil.copy2(full / name, work / "generated" / name)
    paper.latexmk(work)
    assert not _log_problems((work / "main.log").read_text(errors="replace"))


def test_every_number_macro_matches_the_value_recomputed_from_code(quick_paper, claim_results):
    written = paper.read_numbers(quick_paper / "generated" / "numbers.tex")
    assert len(written) > 50
    # from the saved sweep, estimate and claim files
    assert written == paper.numbers_from_disk(quick_paper)
    # and from the claims run afresh in this session (the same seeds give the same numbers)
    assert written == paper.numbers_from_disk(quick_paper, claims=claim_results)
    # spot checks against the sources themselves
    sc = paper.phase_scenario()
    assert written["PhaseClients"] == str(sc.population.num_clients)
    assert written["LitClaims"] == str(len(claim_results))
    assert written["LitHold"] == str(sum(int(d.attrs["holds"]) for d in claim_results.values()))
    ds = claim_results["teacher_bias"]
    assert written["LitTeacherBiasEffect"] == f"{ds.attrs['effect']:.3f}"


def test_the_text_types_no_number_by_hand_and_uses_only_defined_macros(quick_paper):
    tex = (paper.SOURCE / "main.tex").read_text()
    body = tex[tex.index(r"\begin{document}") :]
    body = re.sub(r"(?<!\\)%.*", "", body)  # comments (an escaped \% is text)
    body = re.sub(r"\\(cite[pt]?|label|ref|input|includegraphics|bibliography\w*)(\[[^]]*\])?\{[^}]*\}", "", body)
    assert not re.findall(r"\d+\.\d+|\d{2,}", body), "type numbers through generated macros"
    defined = set(paper.read_numbers(quick_paper / "generated" / "numbers.tex"))
    used = set(
        re.findall(
            r"\\((?:Phase|Lit|Est|Tax|Silent|Fail|Switch|Rhat|Ess|Band|Struct|Constraint|Theory|Influence|Transfer|Bench)[A-Za-z]*)",
            tex,
        )
    )
    assert used <= defined, sorted(used - defined)


def test_committed_bibliography_is_the_codes():
    assert (paper.SOURCE / "references.bib").read_text() == paper.bibliography()


def test_every_citation_in_the_paper_is_in_the_bibliography(claim_results):
    bib = paper.bibliography()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    tex = (paper.SOURCE / "main.tex").read_text() + paper.literature_table_tex(claim_results)
    cited = {k.strip() for group in re.findall(r"\\cite[pt]?\{([^}]*)\}", tex) for k in group.split(",")}
    assert cited and cited <= keys, sorted(cited - keys)


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(paper.PaperError, match="no main.tex"):
        paper.build(tmp_path / "out", source=tmp_path, quick=True)


def test_numbers_format_integers_floats_and_infinity():
    assert paper._f(3) == "3" and paper._f(np.int64(7)) == "7" and paper._f(0.12345) == "0.123"
    assert paper._f(float("inf")) == r"\infty" and paper._camel("adaptive_switching") == "AdaptiveSwitching"


def test_edge_ink_sees_a_clipped_figure_and_a_page_that_overruns():
    img = np.ones((100, 80, 3))
    img[40:60, 30:50] = 0.0  # content inside
    assert paper.edge_ink(img, 2) == 0
    img[45:50, 78:] = 0.0  # a label cut off at the right edge
    assert paper.edge_ink(img, 2) > 0
    page = np.ones((550, 425))
    page[20:530, 10:400] = 0.2  # text running into the left margin
    assert paper.edge_ink(page, 17) > 0


def test_the_recorded_frontier_is_the_phase_worlds_and_its_epsilons_are_the_accountants():
    from silentfail.frontier import Z, epsilons, gdp_boundary

    ds = paper.load_frontier(paper.SOURCE / "data" / "frontier")  # refuses a stale record
    sc = paper.phase_scenario()
    ends = [0, -1]  # the accountant at the grid's ends (each call composes the whole run)
    np.testing.assert_allclose(ds["epsilon"].values[ends], epsilons(sc, ds[Z].values[ends]), rtol=1e-9)
    assert ds.attrs["gdp_epsilon"] == pytest.approx(gdp_boundary(sc, sc.monitor.alpha), rel=1e-9)
    nums = paper.frontier_numbers(ds)
    assert nums["FrontierSeeds"] == str(ds.attrs["seeds"]) and nums["FrontierGridZ"] == str(ds.sizes[Z])
    assert int(nums["FrontierSilentModes"]) <= int(nums["FrontierModes"]) == ds.sizes["mode"]
    tex = paper.frontier_table_tex(ds)
    assert tex.count("\\\\") == ds.sizes["mode"] + 1  # a row per mode and the header


def test_a_stale_or_missing_frontier_record_is_refused(tmp_path):
    with pytest.raises(paper.PaperError, match="silentfail frontier -o"):
        paper.load_frontier(tmp_path)
    ds = paper.load_frontier(paper.SOURCE / "data" / "frontier")
    sc = paper.phase_scenario().replace(**{"federation.rounds": 7})
    ds.attrs["scenario"] = sc.to_json()
    ds.to_netcdf(tmp_path / paper.FRONTIER, engine="h5netcdf")
    with pytest.raises(paper.PaperError, match="another scenario"):
        paper.load_frontier(tmp_path)


@pytest.mark.parametrize(
    ("name", "title", "build"),
    [
        ("flower", "Flower", "build_venv.sh flower"),
        ("pfl", "pfl-research", "build_venv.sh pfl"),
        ("fedjax", "FedJAX", "build_venv.sh fedjax"),
    ],
)
def test_a_bench_record_without_a_peer_is_refused_with_how_to_make_one(name, title, build):
    with pytest.raises(paper.PaperError, match=f"no {title} measurement .--no-flower.*{build}"):
        paper.peer_numbers({name: {"skipped": "--no-flower"}, "date": "2026-12-07"}, name)
    with pytest.raises(paper.PaperError, match=f"no {title} measurement"):
        paper.peer_numbers({"date": "2026-12-07"}, name)


def test_the_recorded_peers_reach_the_engines_global_model():
    """Each framework ran the same FedAvg to the same final global model (float64 peers
    against the float32 engine), and the paper's macros quote the record."""
    bench = json.loads(paper.BENCH.read_text())
    assert set(PEERS) == {"flower", "pfl", "fedjax"}
    for name in PEERS:
        row = bench[name]
        assert row["max_abs_diff_global_model"] < 1e-6
        assert row["speed_ratio"] == pytest.approx(
            row["silentfail_client_rounds_per_s"] / row[f"{name}_client_rounds_per_s"]
        )
        macros = paper.peer_numbers(bench, name)
        assert macros[f"Bench{name.capitalize()}Ratio"] == f"{row['speed_ratio']:,.0f}"
