"""A generator of bad inputs across the scenario fields, the CLI, scenario and extension
files and NetCDF inputs, and a judge of the answers (``tests/test_fuzz.py`` runs it).

Every case is something a user could type or hand over and that must be refused. The
judge sorts each answer into

* ``refused``: a one-line error naming what is wrong (the field, option or file),
* ``vague``: refused, but the message does not name it,
* ``traceback``: an exception escaped (or the CLI printed a traceback),
* ``accepted``: exit 0 or no error (a silent acceptance),
* ``hang``: no answer within the time limit.

``python tests/fuzz_inputs.py`` prints the counts.
"""

from __future__ import annotations

import io
import json
import signal
import sys
import tempfile
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Seconds a case may take before it counts as a hang.
LIMIT_S = 20


@dataclass
class Case:
    name: str
    run: Callable[[], Any]  # raises on refusal (Python API) or calls the CLI
    needle: str  # what the message must name
    cli: bool = False
    files: dict[str, bytes] = field(default_factory=dict)


def _bad_values(annotation: str) -> list[Any]:
    """Values of the wrong type or out of every range for a field of this annotation."""
    if "bool" in annotation:
        return [1, "yes", 0.5]
    if "Literal" in annotation:
        return ["no_such_value", 3, True]
    if "tuple" in annotation:
        return ["x", {"a": 1}, [float("nan")]]
    if "int" in annotation and "float" not in annotation:
        return [True, "3", 1.5, -(10**12)]
    if "float" in annotation:
        return [True, "0.1", float("nan"), float("inf"), -1e300]
    if "str" in annotation:
        return [3, ["a"]]
    return [object()]


def scenario_cases() -> list[Case]:
    from silentfail.sim.scenario import Scenario, scenario_from_dict

    out = []
    for sec, f in Scenario.model_fields.items():
        sub = getattr(Scenario(), sec)
        fields = type(sub).model_fields if hasattr(type(sub), "model_fields") else {sec: f}
        for name, ff in fields.items():
            path = f"{sec}.{name}" if hasattr(type(sub), "model_fields") else sec
            for v in _bad_values(str(ff.annotation)):
                data = {sec: {name: v}} if "." in path else {sec: v}

                def call(data=data):
                    scenario_from_dict(data)

                out.append(Case(f"scenario {path} = {v!r}", call, path))
    return out


def _neg_or_bad(path: str, v: Any) -> bool:
    return True


def cli_cases() -> list[Case]:
    from silentfail.cli import main

    argvs = [
        (["simulate", "--seed", "-1"], "--seed"),
        (["simulate", "--seed", str(2**40)], "--seed"),
        (["simulate", "--seeds", str(10**12)], "--seeds"),
        (["simulate", "--preset", ""], "preset ''"),
        (["simulate", "--preset", "nope"], "preset 'nope'"),
        (["simulate", "--list-presets", "--preset", "x"], "--list-presets"),
        (["simulate", "--set", "federation.roundz=3"], "federation.roundz"),
        (["simulate", "--set", "noequals"], "--set"),
        (["simulate", "--set", "federation.rounds=0"], "federation.rounds"),
        (["simulate", "--set", "federation.rounds=true"], "federation.rounds"),
        (["simulate", "--set", "federation.secure_aggregation=1"], "federation.secure_aggregation"),
        (["simulate", "--set", "world.core_strength=1e400"], "world.core_strength"),
        (["simulate", "--client-chunk", "zero"], "--client-chunk"),
        (["simulate", "--devices", "64"], "devices"),
        (["simulate", "--bogus"], "--bogus"),
        (["phase", "--x", "personalization.lam=1:2"], "--x"),
        (["phase", "--x", "personalization.lam=a[b]c"], "a[b]c"),
        (["phase", "--x", "nofield=1,2"], "nofield"),
        (["phase", "--x", "personalization.lam=0.1,inf"], "personalization.lam"),
        (["phase", "--x", "personalization.lam=0.1,0.1"], "repeats"),
        (["phase", "--x", "personalization.lam=0:1:1000000"], "above the limit"),
        (["phase", "--seeds", "0"], "--seeds"),
        (["phase", "--alpha", "2"], "monitor.alpha"),
        (["phase", "--constraints", "bogus"], "bogus"),
        (["phase", "--x", "federation.rounds=1:10:3"], "federation.rounds"),
        (["taxonomy", "show", "nope"], "nope"),
        (["taxonomy", "show", "--kind", "gadget"], "gadget"),
        (["taxonomy", "query", "causes", "nope"], "nope"),
        (["taxonomy", "query", "paths", "label_shift"], "mode"),
        (["taxonomy", "query", "silent", "-c", "x"], "'x'"),
        (["taxonomy", "export", "--format", "doc"], "doc"),
        (["taxonomy", "export", "--format", "png"], "output"),
        (["literature", "-c", "nope"], "nope"),
        (["check", "for all nonsense"], "nonsense"),
        (["check", "for all lambda <= 0.1, P(silent x) >= 0.9"], "x"),
        (["prove", "nope"], "nope"),
        (["cite", "nope"], "nope"),
        (["estimate", "missing.nc"], "missing.nc"),
        (["report", "missing.nc"], "missing.nc"),
        (["estimate", "--model", "spline9", "missing.nc"], "spline9"),
    ]
    files = {
        "empty.toml": (b"", "empty.toml"),
        "comments.toml": (b"# only a comment\n", "comments.toml"),
        "utf16.toml": ("[federation]\nrounds = 3\n".encode("utf-16"), "utf16.toml"),
        "binary.toml": (bytes(range(256)), "binary.toml"),
        "badtoml.toml": (b"[federation\n", "badtoml.toml"),
        "unknownkey.toml": (b"[federation]\nroundz = 3\n", "federation.roundz"),
        "badtype.toml": (b'[federation]\nrounds = "30"\n', "federation.rounds"),
        "badpreset.toml": (b'preset = "nope"\n', "nope"),
        "no:smile:such.toml": (b"[federation]\nrounds = -1\n", "federation.rounds"),
        "text.nc": (b"not netcdf", "text.nc"),
        "trunc.nc": (b"\x89HDF\r\n\x1a\n" + b"\0" * 64, "trunc.nc"),
    }
    out = [Case("cli " + " ".join(a), lambda a=a: main(a), needle, cli=True) for a, needle in argvs]
    for fname, (content, needle) in files.items():
        cmd = ["report"] if fname.endswith(".nc") else ["simulate", "--no-verdict"]
        out.append(
            Case(
                f"cli {cmd[0]} {fname}", lambda f=fname, c=cmd: main([*c, f]), needle, cli=True, files={fname: content}
            )
        )
    for d in ("-o", "--output"):
        out.append(
            Case(f"cli simulate {d} DIR", lambda d=d: main(["simulate", "--no-verdict", d, "."]), "directory", cli=True)
        )
    out.append(
        Case(
            "cli export png -o DIR",
            lambda: main(["taxonomy", "export", "--format", "png", "-o", "."]),
            "directory",
            cli=True,
        )
    )
    return out


def extension_cases() -> list[Case]:
    from silentfail.taxonomy import builtin_taxonomy
    from silentfail.taxonomy.validate import load_extension

    good = {
        "schema_version": "1.0",
        "nodes": [
            {
                "id": "memo",
                "kind": "failure_mode",
                "name": "M",
                "definition": "d",
                "index": 7,
                "layer": "model",
                "metric": "m",
                "worse": "higher",
            }
        ],
        "edges": [
            {"kind": "causes", "source": "personal_overfitting", "target": "memo"},
            {"kind": "detects", "source": "central_audit", "target": "memo", "scope": "deployed"},
        ],
    }
    variants = {
        "self-loop": dict(good, edges=good["edges"] + [{"kind": "causes", "source": "memo", "target": "memo"}]),
        "cycle": dict(
            good, edges=good["edges"] + [{"kind": "causes", "source": "memo", "target": "personal_overfitting"}]
        ),
        "future": dict(good, schema_version="9.0"),
        "future-minor": dict(good, schema_version="1.9"),
        "bad-version": dict(good, schema_version="one"),
        "unknown-top": dict(good, extra=1),
        "dangling": dict(good, edges=[{"kind": "causes", "source": "nowhere", "target": "memo"}]),
        "bad-kind": dict(good, nodes=[dict(good["nodes"][0], kind="gadget")]),
        "duplicate": dict(good, nodes=good["nodes"] * 2),
        "no-id": dict(good, nodes=[{"kind": "failure_mode"}]),
        "list-top": [1, 2],
        "mistyped": dict(good, edges=[{"kind": "detects", "source": "label_shift", "target": "memo"}]),
    }
    out = []
    for name, data in variants.items():

        def call(data=data):
            tmp = Path(tempfile.mkdtemp()) / "ext.json"
            tmp.write_text(json.dumps(data))
            tax, violations = load_extension(builtin_taxonomy(), tmp)
            if violations:
                raise ValueError("; ".join(str(v) for v in violations))

        out.append(Case(f"extension {name}", call, ""))
    return out


def all_cases() -> list[Case]:
    return scenario_cases() + cli_cases() + extension_cases()


class _Timeout(Exception):
    pass


def judge(case: Case, workdir: Path) -> tuple[str, str]:
    """Run one case in ``workdir`` and sort its answer; returns (verdict, message)."""
    import os

    for name, content in case.files.items():
        (workdir / name).write_bytes(content)
    here = os.getcwd()
    os.chdir(workdir)
    out, err = io.StringIO(), io.StringIO()

    def alarm(*_):
        raise _Timeout

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(LIMIT_S)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                case.run()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
                text = err.getvalue().strip()
                if code == 0:
                    return "accepted", text
                if "Traceback" in text:
                    return "traceback", text
                if len(text.splitlines()) != 1:
                    return "vague", text
                return ("refused" if case.needle in text else "vague"), text
            except _Timeout:
                return "hang", ""
            except (ValueError, TypeError) as exc:  # the Python API's refusals
                if case.cli:
                    return "traceback", repr(exc)
                msg = str(exc)
                return ("refused" if case.needle in msg else "vague"), msg
            except Exception as exc:  # noqa: BLE001
                return "traceback", f"{type(exc).__name__}: {exc}"
        return "accepted", err.getvalue().strip()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        os.chdir(here)


def run_all(cases: list[Case] | None = None) -> dict[str, list[tuple[str, str]]]:
    cases = all_cases() if cases is None else cases
    results: dict[str, list[tuple[str, str]]] = {k: [] for k in ("refused", "vague", "traceback", "accepted", "hang")}
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            verdict, msg = judge(case, Path(tmp))
            results[verdict].append((case.name, msg))
    return results


if __name__ == "__main__":
    res = run_all()
    print(json.dumps({k: len(v) for k, v in res.items()}))
    for k in ("vague", "traceback", "accepted", "hang"):
        for name, msg in res[k]:
            print(f"{k}: {name}: {msg[:200]}", file=sys.stderr)
