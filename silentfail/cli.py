"""The ``silentfail`` command line.

Every error is one clear line on stderr and a non-zero exit (2 for bad input, 1 for a
failed check), with no traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .taxonomy import (
    FEDERATED_CONSTRAINTS,
    MODE_COLUMNS,
    SchemaError,
    Taxonomy,
    benchmark_table,
    builtin_taxonomy,
    causes_of,
    coverage_matrix,
    detectors_for,
    load_extension,
    paths,
    silent_modes,
    structural_divide,
    validate,
)
from .taxonomy import export as tx_export
from .taxonomy.schema import NodeKind


class _Consoles:
    """Rich consoles made on use, so they follow the current stdout/stderr; when the
    output is not a terminal (a pipe, a file, a test) tables get a wide fixed width
    rather than folding cells."""

    def __init__(self, stderr: bool) -> None:
        self.stderr = stderr

    def print(self, *args, **kwargs) -> None:
        """Print literally: no console markup, emoji codes or highlighting unless a caller
        asks (user text such as 'no:smile:such.toml' or 'a[b]c' is echoed as written)."""
        stream = sys.stderr if self.stderr else sys.stdout
        width = None if stream.isatty() else 200
        for key in ("markup", "emoji", "highlight"):
            kwargs.setdefault(key, False)
        Console(file=stream, width=width, soft_wrap=True, emoji=False).print(*args, **kwargs)


console = _Consoles(stderr=False)
err_console = _Consoles(stderr=True)

_STATE = {"debug": False}

app = typer.Typer(
    name="silentfail",
    help="Silent failures in federated personalization of foundation models: the taxonomy, "
    "its queries and exports, simulation of the stylized world, closed-form results, and citations.\n\nExample: silentfail taxonomy query silent "
    "--constraints secure_aggregation,no_personal_model_access",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
taxonomy_app = typer.Typer(
    help="Show, export, query and validate the taxonomy graph.\n\nExample: silentfail taxonomy show alignment_erosion",
    no_args_is_help=True,
    rich_markup_mode=None,
)
query_app = typer.Typer(
    help="Query the taxonomy: silent modes, causes, detectors, paths, coverage, benchmarks.\n\n"
    "Example: silentfail taxonomy query causes fairness_collapse",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(taxonomy_app, name="taxonomy")
taxonomy_app.add_typer(query_app, name="query")


class UserError(Exception):
    """A problem with what the user asked for; printed as one line."""


# ------------------------------------------------------------------ helpers

ExtOption = typer.Option(None, "--file", "-f", help="An extension file (JSON/TOML) applied to the built-in graph.")
PluginOption = typer.Option(
    None,
    "--plugin",
    help="A Python file that registers modes, detectors, aggregators or taxonomy nodes (silentfail.plugins); "
    "repeatable. It is code and runs: name only files you trust.",
)


CoordinatorOption = typer.Option(
    None,
    "--coordinator",
    envvar="SILENTFAIL_COORDINATOR",
    help="Join a multi-process run (jax.distributed): process 0's HOST:PORT, or 'auto' for the settings of the "
    "cluster scheduler (SLURM, Open MPI, ...). Every process runs the same command; only process 0 prints and "
    "writes. silentfail launch starts N local processes.",
)
NumProcessesOption = typer.Option(
    None, "--num-processes", envvar="SILENTFAIL_NUM_PROCESSES", help="The number of processes (with --coordinator)."
)
ProcessIdOption = typer.Option(
    None, "--process-id", envvar="SILENTFAIL_PROCESS_ID", help="This process' id in 0..N-1 (with --coordinator)."
)


def _join(coordinator: Optional[str], num_processes: Optional[int], process_id: Optional[int]) -> None:
    """Join the multi-process run the options describe (before JAX computes anything);
    the processes other than 0 then print nothing on stdout (their errors still reach
    stderr)."""
    from .sim import distributed

    distributed.initialize(distributed.check_cluster(coordinator, num_processes, process_id))
    if not distributed.is_writer():
        import os

        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the rest of the process


def _is_writer() -> bool:
    from .sim.distributed import is_writer

    return is_writer()


def _load_plugins(paths: Optional[list[Path]]) -> None:
    """Run the plugin files the user named (each once per process)."""
    if paths:
        from .plugins import load_plugin

        for path in paths:
            load_plugin(path)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    verbose: bool = typer.Option(
        False, "--verbose", help="Keep the compiler's and the runtime's own log lines on stderr (e.g. slow compiles)."
    ),
    plugin: Optional[list[Path]] = PluginOption,
) -> None:
    _STATE["debug"] = debug
    _load_plugins(plugin)


def _load(file: Optional[Path]) -> Taxonomy:
    tax = builtin_taxonomy()
    if file is None:
        return tax
    tax, violations = load_extension(tax, file)
    if violations:
        raise UserError(f"{file} has {len(violations)} violation(s); run 'silentfail taxonomy validate {file}'")
    return tax


def _output_file(path: Optional[Path], option: str = "--output") -> Optional[Path]:
    """Check an output file before any work: not a directory, its folder creatable."""
    if path is None:
        return None
    if path.is_dir():
        raise UserError(f"{option} {str(path)!r} is a directory; give a file name inside it")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{option} {str(path)!r}: {str(parent)!r} is not a directory")
    return path


def _output_dir(path: Path, option: str = "--output") -> Path:
    """Check an output folder before any work: not an existing file."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {str(path)!r} exists and is not a directory")
    return path


def _split(values: Optional[str]) -> list[str]:
    if not values:
        return []
    return [v.strip() for v in values.split(",") if v.strip()]


def _table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    """A table whose title and cells are literal text (never read as console markup)."""
    from rich.text import Text

    t = Table(title=Text(title), show_lines=False)
    for c in columns:
        t.add_column(Text(c), overflow="fold")
    for r in rows:
        t.add_row(*(Text(str(c)) for c in r))
    return t


ConstraintsOption = typer.Option(
    "", "--constraints", "-c", help="Comma-separated constraint ids, e.g. secure_aggregation,central_dp."
)
ScopeOption = typer.Option(
    "any",
    "--scope",
    help="any (a detector of either scope, what the simulation counts), deployed (personalized models) or global (the global model).",
)


# ------------------------------------------------------------------ taxonomy


@taxonomy_app.command("show")
def show(
    node: Optional[str] = typer.Argument(None, help="A node id, name or alias to show in full."),
    kind: Optional[str] = typer.Option(None, "--kind", "-k", help="Only nodes of this kind."),
    file: Optional[Path] = ExtOption,
) -> None:
    """List the nodes of the graph, or show one node in full.

    Example: silentfail taxonomy show --kind failure_mode
    """
    tax = _load(file)
    if node is not None:
        n = tax.find(node)
        t = Table(title=f"{n.name} ({n.kind.value})", show_header=False)
        for k, v in n.model_dump(mode="json").items():
            if v not in ("", [], (), None) and k != "bibtex":
                t.add_row(k, str(v))
        for e in tax.out_edges(n.id):
            t.add_row(
                f"-{e.kind.value}->",
                e.target + (f" ({e.strength or e.level or e.scope})" if (e.strength or e.level or e.scope) else ""),
            )
        for e in tax.in_edges(n.id):
            t.add_row(f"<-{e.kind.value}-", e.source)
        console.print(t)
        return
    if kind is not None and kind not in {k.value for k in NodeKind}:
        raise UserError(f"unknown kind {kind!r}; known kinds: {', '.join(k.value for k in NodeKind)}")
    rows = [[n.id, n.kind.value, n.name] for n in tax.nodes(kind)]
    console.print(_table(f"silentfail taxonomy: {len(rows)} nodes", ["id", "kind", "name"], rows))


@taxonomy_app.command("export")
def export(
    fmt: str = typer.Option("json", "--format", "-t", help=f"One of: {', '.join(tx_export.FORMATS)}."),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Output file (stdout if omitted; required for figures)."
    ),
    file: Optional[Path] = ExtOption,
) -> None:
    """Export the graph as node-link JSON, GraphML, DOT, Mermaid, a LaTeX table or a figure.

    Example: silentfail taxonomy export --format png -o taxonomy.png
    """
    tax = _load(file)
    _output_file(output)
    if output is not None and fmt in ("png", "svg", "pdf") and output.suffix.lower() != f".{fmt}":
        raise UserError(f"--output {str(output)!r} must end in .{fmt} for --format {fmt}")
    text = tx_export.write(tax, fmt, output)
    if text is not None:
        sys.stdout.write(text)
    else:
        err_console.print(f"wrote {output}")


@taxonomy_app.command("validate")
def validate_cmd(
    file: Optional[Path] = typer.Argument(None, help="An extension file (JSON/TOML); default: the built-in graph."),
) -> None:
    """Check the built-in graph, or a user's extension file, and list every violation.

    Exits 1 if there is any violation. Example: silentfail taxonomy validate my_modes.toml
    """
    if file is None:
        tax, violations = builtin_taxonomy(), validate(builtin_taxonomy())
    else:
        tax, violations = load_extension(builtin_taxonomy(), file)
    if violations:
        for v in violations:
            err_console.print(str(v), markup=False, highlight=False)
        err_console.print(f"{len(violations)} violation(s)", markup=False)
        raise typer.Exit(1)
    console.print(f"ok: {len(tax)} nodes, {len(tax.edges())} edges, no violations")


# ------------------------------------------------------------------ queries


def _scope_text(scope: str) -> str:
    return "detectors of the deployed or the global model" if scope == "any" else f"{scope} models"


@query_app.command("silent")
def q_silent(
    constraints: str = ConstraintsOption,
    detectors: Optional[str] = typer.Option(
        None, "--detectors", "-d", help="Comma-separated detector ids deployed (default: all)."
    ),
    scope: str = ScopeOption,
    file: Optional[Path] = ExtOption,
) -> None:
    """The modes no deployed detector can see under the constraints, with the blocking paths.

    Example: silentfail taxonomy query silent -c secure_aggregation,no_personal_model_access
    """
    tax = _load(file)
    dets = _split(detectors) if detectors is not None else None
    result = silent_modes(tax, _split(constraints), dets, scope=scope)
    rows = [[s.mode, s.explanation()] for s in result]
    console.print(_table(f"structurally silent modes ({_scope_text(scope)}): {len(rows)}", ["mode", "why"], rows))


@query_app.command("causes")
def q_causes(mode: str = typer.Argument(..., help="A failure mode id."), file: Optional[Path] = ExtOption) -> None:
    """Every cause with a causal path to a mode, by kind.

    Example: silentfail taxonomy query causes alignment_erosion
    """
    tax = _load(file)
    rows = [[k, ", ".join(v)] for k, v in causes_of(tax, mode).items()]
    console.print(_table(f"causes of {mode}", ["kind", "nodes"], rows))


@query_app.command("influences")
def q_influences(file: Optional[Path] = ExtOption) -> None:
    """The influence edges between the modes, with their strength and note (a measured
    verdict when the extension file annotates them, see silentfail influences --annotate).

    Example: silentfail taxonomy query influences --file influences/taxonomy.json
    """
    tax = _load(file)
    rows = [[e.source, e.target, e.strength or "", e.note or "-"] for e in tax.edges("influences")]
    console.print(_table("influences", ["source", "target", "strength", "note"], rows))


@query_app.command("detectors")
def q_detectors(
    mode: str = typer.Argument(..., help="A failure mode id."),
    constraints: str = ConstraintsOption,
    scope: str = ScopeOption,
    file: Optional[Path] = ExtOption,
) -> None:
    """The detectors of a mode that survive a constraint set.

    Example: silentfail taxonomy query detectors fairness_collapse -c no_attribute_use
    """
    tax = _load(file)
    found = detectors_for(tax, mode, _split(constraints), scope=scope)
    console.print("\n".join(found) if found else f"none: {mode} is structurally silent under these constraints")


@query_app.command("paths")
def q_paths(
    cause: str = typer.Argument(..., help="A cause (shift, personalization, constraint, threat or mechanism) id."),
    mode: str = typer.Argument(..., help="A failure mode id."),
    influences: bool = typer.Option(False, "--influences", help="Also follow the mode-to-mode influence edges."),
    file: Optional[Path] = ExtOption,
) -> None:
    """All causal paths from a cause to a mode.

    Example: silentfail taxonomy query paths label_shift confidence_miscalibration
    """
    tax = _load(file)
    found = paths(tax, cause, mode, influences=influences)
    console.print("\n".join(" -> ".join(p) for p in found) if found else f"no causal path from {cause} to {mode}")


@query_app.command("coverage")
def q_coverage(scope: str = ScopeOption, file: Optional[Path] = ExtOption) -> None:
    """The coverage matrix: for each mode and constraint set, the surviving detectors
    ('*' = degraded by noise or sampling; SILENT = none).

    Example: silentfail taxonomy query coverage --scope global
    """
    tax = _load(file)
    cm = coverage_matrix(tax, scope=scope)
    sets = list(cm.constraint_sets)
    t = Table(title=f"coverage ({_scope_text(scope)})")
    t.add_column("constraint set")
    for m in cm.modes:
        t.add_column(m, overflow="fold")
    rows = cm.rows()
    for j, s in enumerate(sets):
        t.add_row(s, *[rows[i][j + 1] for i in range(len(cm.modes))])
    console.print(t)


@query_app.command("benchmarks")
def q_benchmarks(file: Optional[Path] = ExtOption) -> None:
    """The paper's benchmark table (Oh & Bui, Table 1), regenerated from the graph.

    Example: silentfail taxonomy query benchmarks
    """
    tax = _load(file)
    rows = [[r["category"], r["benchmark"], *[r[m] for m in MODE_COLUMNS]] for r in benchmark_table(tax)]
    console.print(_table("benchmark landscape", ["category", "benchmark", *MODE_COLUMNS], rows))


@query_app.command("divide")
def q_divide(
    constraints: str = typer.Option(
        ",".join(FEDERATED_CONSTRAINTS), "--constraints", "-c", help="Comma-separated constraint ids."
    ),
    file: Optional[Path] = ExtOption,
) -> None:
    """The structural divide: benchmarks that cover a mode directly and still work under
    the constraints (by default the standard federated ones).

    Example: silentfail taxonomy query divide
    """
    tax = _load(file)
    rows = structural_divide(tax, _split(constraints))
    console.print(
        _table(
            "structural divide",
            ["mode", "direct coverage", "direct and usable", "proxy and usable"],
            [
                [
                    r.mode,
                    ", ".join(r.direct) or "-",
                    ", ".join(r.direct_usable) or "none",
                    ", ".join(r.proxy_usable) or "none",
                ]
                for r in rows
            ],
        )
    )
    if not any(r.direct_usable for r in rows):
        console.print("No benchmark both covers a mode directly and works under these constraints.")


# ------------------------------------------------------------------ simulate


@app.command("simulate")
def simulate(
    scenario_file: Optional[Path] = typer.Argument(None, help="A scenario TOML file (default: the 'default' preset)."),
    preset_name: Optional[str] = typer.Option(None, "--preset", "-p", help="A named preset instead of a file."),
    seed: int = typer.Option(
        0,
        "--seed",
        "-s",
        min=0,
        max=2**30 - 1,
        help="Random seed in [0, 2**30 - 1]: a run is a pure function of (scenario, seed).",
    ),
    seeds: int = typer.Option(
        0,
        "--seeds",
        min=0,
        max=2**30,
        help="Also run seeds 0..S-1 and print the summary across them: P(fail), P(detected | fail), P(silent), delays.",
    ),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the trace as NetCDF."),
    list_presets: bool = typer.Option(False, "--list-presets", help="List the presets and exit."),
    set_: Optional[list[str]] = typer.Option(
        None, "--set", help="Override a field, e.g. --set federation.rounds=10 (repeatable)."
    ),
    verdict_: bool = typer.Option(
        True,
        "--verdict/--no-verdict",
        help="Calibrate the detectors on null runs and print which failures are caught or silent.",
    ),
    devices: Optional[int] = typer.Option(
        None,
        "--devices",
        min=1,
        help="Shard the client axis over this many devices (default: 1; in a multi-process run every device of "
        "every process; on CPU: XLA_FLAGS=--xla_force_host_platform_device_count=N).",
    ),
    client_chunk: str = typer.Option(
        "auto",
        "--client-chunk",
        help="Clients per block of a round's per-client work (bounds memory): a number, 'auto' or 'none'.",
    ),
    plugin: Optional[list[Path]] = PluginOption,
    coordinator: Optional[str] = CoordinatorOption,
    num_processes: Optional[int] = NumProcessesOption,
    process_id: Optional[int] = ProcessIdOption,
) -> None:
    """Simulate a scenario, print a per-mode table of failures, and optionally save the trace.

    Example: silentfail simulate --preset label-shift --seed 1 -o trace.nc
    """
    _join(coordinator, num_processes, process_id)
    _load_plugins(plugin)
    from .sim.run import run
    from .sim.scenario import exhibits_text, preset, preset_exhibits, preset_names
    from .sim.trace import save_trace, summary

    if list_presets:
        if scenario_file is not None or preset_name is not None or set_:
            raise UserError("--list-presets lists the presets: it takes no scenario file, --preset or --set")
        console.print(
            _table(
                "presets",
                ["name", "description", "exhibits (over 8 seeds)"],
                [[n, preset(n).description, exhibits_text(preset_exhibits(n))] for n in preset_names()],
            )
        )
        return
    _output_file(output)
    sc = _scenario(scenario_file, preset_name, set_, "default")
    _print_setting(sc)
    if seeds:
        _print_assessment(sc, seeds)
    trace = run(sc, seed, chunk=_client_chunk(client_chunk), devices=devices)
    rows = summary(trace)
    console.print(
        _table(
            f"{sc.name}: seed {seed}, {sc.population.num_clients} clients x {sc.federation.rounds} rounds",
            ["mode", "failed", "failure round", "worst", "final", "threshold"],
            [
                [
                    r["mode"],
                    ("FAILED" if r["failed"] else "ok") + (" (undecided: within 2 SE)" if r.get("undecided") else ""),
                    str(r["failure_round"]) if r["failed"] else "-",
                    f"{r['worst_value']:.4f}" + (f" ± {r['worst_se']:.4f}" if "worst_se" in r else ""),
                    f"{r['final_value']:.4f}",
                    f"{r['threshold']:.4f}",
                ]
                for r in rows
            ],
        )
    )
    from .sim.privacy import describe_attrs

    final_alignment = float(trace["global_alignment"][-1])
    console.print(describe_attrs(trace.attrs), markup=False, highlight=False)
    console.print(f"FM alignment {trace.attrs['fm_alignment']:.3f} -> global {final_alignment:.3f}")
    if verdict_:
        from .sim.verdict import verdict

        _print_verdict(verdict(trace))
    from .sim.distributed import is_writer

    if output is not None and is_writer():
        save_trace(trace, output)
        err_console.print(f"wrote {output}")


def _print_setting(sc) -> None:
    """The full constraint set in force and the detectors it leaves deployed."""
    from rich.text import Text

    from .report import setting_text

    console.print(Text(setting_text(sc)))


def _client_chunk(text: str):
    if text in ("auto", "none"):
        return None if text == "none" else "auto"
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UserError(f"--client-chunk expects a positive integer, 'auto' or 'none', got {text!r}")
    return value


def _overrides(set_: Optional[list[str]]) -> dict:
    import json as _json

    overrides = {}
    for item in set_ or []:
        if "=" not in item:
            raise UserError(f"--set expects FIELD=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            overrides[key.strip()] = _json.loads(value)
        except _json.JSONDecodeError:
            overrides[key.strip()] = value
    return overrides


def _scenario(scenario_file: Optional[Path], preset_name: Optional[str], set_: Optional[list[str]], default: str):
    from .sim.scenario import load_scenario, preset

    if scenario_file is not None and preset_name is not None:
        raise UserError("give a scenario file or --preset, not both")
    sc = (
        load_scenario(scenario_file)
        if scenario_file is not None
        else preset(default if preset_name is None else preset_name)
    )
    overrides = _overrides(set_)
    return sc.replace(**overrides) if overrides else sc


def _parse_axis(text: str, option: str) -> tuple[str, list[float]]:
    """FIELD=lo:hi:n (linear; log-spaced when written FIELD=log:lo:hi:n) or FIELD=v1,v2,..."""
    import numpy as np

    if "=" not in text:
        raise UserError(f"{option} expects FIELD=lo:hi:n or FIELD=v1,v2,..., got {text!r}")
    field, spec = (t.strip() for t in text.split("=", 1))
    try:
        if ":" in spec:
            parts = spec.split(":")
            log = parts[0] == "log"
            lo, hi, n = (float(parts[-3]), float(parts[-2]), int(parts[-1]))
            if n < 1 or (log and (lo <= 0 or hi <= 0)):
                raise ValueError
            values = np.geomspace(lo, hi, n) if log else np.linspace(lo, hi, n)
            return field, [float(f"{v:.6g}") for v in values]
        return field, [float(v) for v in spec.split(",")]
    except (ValueError, IndexError):
        raise UserError(f"{option}: cannot read {spec!r} (expected lo:hi:n, log:lo:hi:n or v1,v2,...)") from None


def _progress():
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("runs"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(file=sys.stderr),
        transient=False,
        disable=not _is_writer(),  # one bar: process 0's
    )
    task = {}

    def update(done: int, total: int) -> None:
        if not task:
            task["id"] = bar.add_task("runs", total=total)
        bar.update(task["id"], completed=done)

    return bar, update


@app.command("phase")
def phase(
    scenario_file: Optional[Path] = typer.Argument(None, help="A scenario TOML file (default: the 'phase' preset)."),
    preset_name: Optional[str] = typer.Option(None, "--preset", "-p", help="A named preset instead of a file."),
    x: str = typer.Option(
        "personalization.lam=log:0.01:10:8",
        "--x",
        help="First axis: FIELD=lo:hi:n, FIELD=log:lo:hi:n or FIELD=v1,v2,...",
    ),
    y: str = typer.Option("shifts.strength=0:1:8", "--y", help="Second axis, same forms."),
    seeds: int = typer.Option(8, "--seeds", "-s", min=1, max=2**30, help="Seeds per grid cell."),
    allow_large: bool = typer.Option(
        False, "--allow-large", help=f"Run a sweep of more than {200_000:,} runs (refused otherwise, before any work)."
    ),
    constraints: Optional[str] = typer.Option(
        None, "--constraints", "-c", help="Comma-separated constraints in force (default: the scenario's own)."
    ),
    alpha: Optional[float] = typer.Option(
        None, "--alpha", help="False-alarm rate of each detector (default: monitor.alpha)."
    ),
    output: Path = typer.Option(Path("phase"), "--output", "-o", help="Output folder (sweep store, figure, report)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted sweep in the output folder."),
    chunk: int = typer.Option(256, "--chunk", min=1, help="Runs per stored chunk."),
    set_: Optional[list[str]] = typer.Option(
        None, "--set", help="Override a field, e.g. --set federation.rounds=20 (repeatable)."
    ),
    devices: Optional[int] = typer.Option(
        None,
        "--devices",
        min=1,
        help="Shard the runs over this many devices, a divisor of 32 (default: 1; in a multi-process run every "
        "device of every process).",
    ),
    plugin: Optional[list[Path]] = PluginOption,
    coordinator: Optional[str] = CoordinatorOption,
    num_processes: Optional[int] = NumProcessesOption,
    process_id: Optional[int] = ProcessIdOption,
) -> None:
    """Sweep two axes, calibrate the detectors on null runs, and draw the six-panel phase
    diagram of no failure / failure detected / silent failure.

    Example: silentfail phase --x personalization.lam=log:0.01:10:8 --y shifts.strength=0:1:8 --seeds 8 -o phase
    """
    _join(coordinator, num_processes, process_id)
    _load_plugins(plugin)
    import time

    from .constraints import scenario_constraints, with_constraints
    from .figures import phase_figure
    from .sim.sweep import MAX_RUNS, check_size, sweep

    _output_dir(output)
    sc = _scenario(scenario_file, preset_name, set_, "phase")
    if constraints is not None:
        sc = with_constraints(sc, constraints.split(","))
    if alpha is not None:
        sc = sc.replace(**{"monitor.alpha": alpha})
    from .sim.params import axis_value, numeric_field

    (xf, xv), (yf, yv) = _parse_axis(x, "--x"), _parse_axis(y, "--y")
    if xf == yf:
        raise UserError(f"--x and --y sweep the same field {xf!r}")
    numeric_field(sc, xf), numeric_field(sc, yf)  # unknown fields name themselves
    check_size(sc, {xf: xv, yf: yv}, seeds, None if allow_large else MAX_RUNS)  # before validating a million values
    xv, yv = [axis_value(sc, xf, v) for v in xv], [axis_value(sc, yf, v) for v in yv]
    for field, values in ((xf, xv), (yf, yv)):  # every bad value is reported before any work starts
        for v in values:
            sc.replace(**{field: v})
    output.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    bar, update = _progress()
    with bar:
        ds = sweep(
            sc,
            {xf: xv, yf: yv},
            seeds=seeds,
            store=output / "store",
            resume=resume,
            chunk=chunk,
            progress=update,
            max_runs=None if allow_large else MAX_RUNS,
            devices=devices,
        )
    from .sim.distributed import is_writer

    if not is_writer():  # process 0 draws and writes
        return
    figs = phase_figure(ds, output / "phase")
    report_path = _write_report(ds, output)
    _print_sweep(ds)
    err_console.print(
        f"constraints: {', '.join(scenario_constraints(sc)) or 'none'}; {len(xv)} x {len(yv)} cells x {seeds} seeds "
        f"in {time.perf_counter() - t0:.1f} s; wrote {', '.join(str(p) for p in figs)}, {report_path}, {output / 'store' / 'sweep.nc'}"
    )


def _print_sweep(ds) -> None:
    from .report import sweep_detector_table, sweep_mode_table, theory_table

    console.print(_table("over the grid", *sweep_mode_table(ds)))
    if "theory_failed" in ds:
        console.print(
            _table("theory against simulation (predicted regime = simulated majority regime)", *theory_table(ds))
        )
    console.print(
        _table(
            f"detectors (nominal alpha {ds.attrs['alpha']}; achieved on held-out null runs)", *sweep_detector_table(ds)
        )
    )


def _write_report(ds, output: Path) -> Path:
    from .report import sweep_markdown

    path = output / "report.md"
    path.write_text(sweep_markdown(ds, figure=output / "phase.png"))
    return path


@app.command("frontier")
def frontier_cmd(
    scenario_file: Optional[Path] = typer.Argument(None, help="A scenario TOML file (default: the 'phase' preset)."),
    preset_name: Optional[str] = typer.Option(None, "--preset", "-p", help="A named preset instead of a file."),
    quick: bool = typer.Option(False, "--quick", help="A 5 x 5 grid with 4 seeds per cell (about 2 minutes)."),
    output: Path = typer.Option(Path("frontier"), "--output", "-o", help="Output folder (store, figure, report)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted frontier in the output folder."),
    set_: Optional[list[str]] = typer.Option(
        None, "--set", help="Override a field, e.g. --set federation.rounds=20 (repeatable)."
    ),
    plugin: Optional[list[Path]] = PluginOption,
) -> None:
    """The privacy-silence frontier: per mode, P(silent) over (epsilon, from the noise
    multiplier and the accountant) x shift strength, with the minimal detectable shift
    of the best noised-mean detector, the mu-GDP ceiling and the theory's boundaries;
    reports the largest epsilon at which a failing shift stays silent.

    Example: silentfail frontier --quick -o frontier
    """
    _load_plugins(plugin)
    import time

    from .figures import frontier_figure
    from .frontier import frontier, frontier_markdown, frontier_rows

    _output_dir(output)
    sc = _scenario(scenario_file, preset_name, set_, "phase")
    output.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    bar, update = _progress()
    with bar:
        try:
            ds = frontier(sc, quick=quick, store=output / "store", resume=resume, progress=update)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    from .sim.trace import save_netcdf

    save_netcdf(ds, output / "frontier.nc")
    figs = frontier_figure(ds, output / "frontier")
    (output / "report.md").write_text(frontier_markdown(ds, figure=output / "frontier.png"))
    console.print(_table("privacy-silence frontier", *frontier_rows(ds)))
    err_console.print(
        f"{ds.sizes['federation.noise_multiplier']} x {ds.sizes['shifts.strength']} cells x {ds.attrs['seeds']} seeds "
        f"in {time.perf_counter() - t0:.1f} s; wrote {', '.join(str(p) for p in figs)}, {output / 'report.md'}, "
        f"{output / 'frontier.nc'}"
    )


@app.command("bench")
def bench_cmd(
    smoke: bool = typer.Option(
        False, "--smoke", help="Tiny sizes, nothing written unless -o is given (the CI smoke mode)."
    ),
    output: Optional[Path] = typer.Option(
        None,
        "--output",
        "-o",
        help="JSON results (default: benchmarks/results/bench.json on CPU, bench_<device kind>.json on an "
        "accelerator; none with --smoke).",
    ),
    flower: bool = typer.Option(
        True,
        "--flower/--no-flower",
        help="Run the framework peers, Flower, pfl-research and FedJAX (each needs its venv: benchmarks/peers/build_venv.sh NAME).",
    ),
) -> None:
    """Measure speed and scale: client-rounds and local steps per second, compile time,
    peak memory, GFLOP/s and GB/s against this machine's measured peaks, cost exponents
    in clients, rounds and grid cells, and the NumPy and Flower peers.

    Example: silentfail bench -o benchmarks/results/bench.json
    """
    from .bench import BenchError, bench, default_output

    if output is None and not smoke:
        output = default_output()
    try:  # bench() first checks for the checkout (require_checkout)
        bench(smoke=smoke, output=output, flower=flower, log=lambda line: err_console.print(line, highlight=False))
    except BenchError as exc:
        raise UserError(str(exc)) from None


@app.command(
    "launch",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "allow_interspersed_args": False},
)
def launch_cmd(
    ctx: typer.Context,
    processes: int = typer.Option(2, "--processes", "-n", min=1, help="The number of local processes."),
    port: Optional[int] = typer.Option(
        None, "--port", min=1, max=65535, help="The coordinator's port on 127.0.0.1 (default: a free one)."
    ),
    verbose: bool = typer.Option(False, "--verbose", help="Show the runtime's own stderr lines (connections)."),
) -> None:
    """Run a simulate or phase command in N local processes that form one multi-process
    run (jax.distributed over 127.0.0.1, CPU collectives via gloo): the same numbers as
    one process, each process holding its shard of the clients or of the runs.

    Example: silentfail launch --processes 2 -- phase --seeds 4 -o phase
    """
    from .launch import launch

    code = launch(list(ctx.args), processes, port=port, verbose=verbose)
    if code:
        raise typer.Exit(code if code > 0 else 1)


@app.command("fields")
def fields_cmd(
    section: Optional[str] = typer.Argument(
        None, help="One section: world, fm, shifts, population, personalization, federation, thresholds, monitor."
    ),
) -> None:
    """Every scenario field with its type, allowed range, default and description (what
    --set FIELD=VALUE and a scenario TOML accept).

    Example: silentfail fields thresholds
    """
    from .sim.scenario import scenario_fields

    rows = [[f.path, f.type, f.range or "-", f.default, f.description] for f in scenario_fields(section)]
    console.print(
        _table(
            f"scenario fields{f' ({section})' if section else ''}: {len(rows)}",
            ["field", "type", "range", "default", "description"],
            rows,
        )
    )


@app.command("report")
def report(
    path: Path = typer.Argument(
        ..., help="A trace (silentfail simulate -o) or a sweep (phase output folder or its sweep.nc)."
    ),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Write a self-contained Markdown report here (figures beside it)."
    ),
    plugin: Optional[list[Path]] = PluginOption,
) -> None:
    """Summarize what failed, what was caught by which detector, and what stayed silent.

    Example: silentfail report phase/store/sweep.nc -o report.md
    """
    _load_plugins(plugin)
    import numpy as np

    from .report import sweep_markdown, trace_markdown
    from .sim.trace import read_dataset

    _output_file(output)
    if path.is_dir():
        path = path / "store" / "sweep.nc" if (path / "store" / "sweep.nc").exists() else path / "sweep.nc"
    kind, ds = read_dataset(path, ("trace", "sweep"))
    if kind == "sweep":
        invalid = int((~ds["valid"].values.astype(bool)).sum()) if "valid" in ds else 0
        if invalid:
            err_console.print(
                f"warning: {invalid} of {ds['valid'].size} cells are invalid (diverging or unstable); "
                "their probabilities are NaN and left out of the means"
            )
        _print_sweep(ds)
        if output is not None:
            fig = None
            if len(__import__("json").loads(ds.attrs["axes"])) == 2:
                from .figures import phase_figure

                fig = phase_figure(ds, output.with_name(output.stem + "_phase"))[1]
            output.write_text(sweep_markdown(ds, figure=fig))
    else:
        from .sim.verdict import verdict

        trace = ds
        bad_round = int(trace.attrs.get("nonfinite_round", -1))
        if bad_round >= 0 or not np.isfinite(trace["mode_metric"].values).all():
            where = f"at round {bad_round}" if bad_round >= 0 else "(its mode metrics are not all finite)"
            err_console.print(
                f"warning: {str(path)!r}: this run diverged {where}; its metrics and verdict after that are "
                "not meaningful (lower federation.server_lr or personalization.eta)"
            )
        v = verdict(trace)
        _print_verdict(v)
        if output is not None:
            output.write_text(trace_markdown(trace, v))
    if output is not None:
        err_console.print(f"wrote {output}")


@app.command("estimate")
def estimate_cmd(
    path: Path = typer.Argument(..., help="A two-axis sweep (phase output folder or its sweep.nc)."),
    output: Path = typer.Option(Path("estimate"), "--output", "-o", help="Output folder."),
    model: str = typer.Option(
        "probit", "--model", "-m", help="Boundary model: probit (spline boundary) or gp (GP classifier)."
    ),
    link: str = typer.Option("probit", "--link", help="Link function: probit or logit."),
    along: Optional[str] = typer.Option(
        None, "--along", help="The x axis (the boundary is the other axis as a function of it); default the first."
    ),
    modes: Optional[str] = typer.Option(None, "--modes", help="Comma-separated modes (default: all six)."),
    chains: int = typer.Option(4, "--chains", min=1, help="NUTS chains (vectorized)."),
    warmup: int = typer.Option(1000, "--warmup", min=1, help="Warm-up iterations per chain."),
    samples: int = typer.Option(1000, "--samples", min=1, help="Draws per chain."),
    seed: int = typer.Option(0, "--seed", help="Sampler seed."),
) -> None:
    """Fit the posterior phase boundary of P(fail) and P(silent) of every mode (numpyro NUTS),
    with 90% credible bands, R-hat / ESS / divergences, figures and the posterior surfaces.

    Example: silentfail estimate phase -o estimate
    """
    import time

    import numpy as np

    from .figures import boundary_figure
    from .report import estimate_markdown
    from .sim.estimate import LINKS, MODELS, estimate
    from .sim.scenario import MODES
    from .sim.trace import save_netcdf

    if model not in MODELS:
        raise UserError(f"unknown model {model!r}; models: {', '.join(MODELS)}")
    if link not in LINKS:
        raise UserError(f"unknown link {link!r}; links: {', '.join(LINKS)}")

    from .sim.trace import read_dataset

    if path.is_dir():
        path = path / "store" / "sweep.nc" if (path / "store" / "sweep.nc").exists() else path / "sweep.nc"
    _, ds = read_dataset(path, ("sweep",))
    _output_dir(output)
    if not any(np.isfinite(ds[v].values).any() for v in ("p_fail", "p_silent") if v in ds):
        raise UserError(
            f"{str(path)!r}: every cell of the sweep is invalid (no finite P(fail) or P(silent)); nothing to estimate"
        )
    mode_list = tuple(m.strip() for m in modes.split(",")) if modes else MODES
    if bad := [m for m in mode_list if m not in MODES]:
        raise UserError(f"unknown mode(s) {bad}; modes: {', '.join(MODES)}")
    output.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    bar, update = _progress()
    with bar:
        est, _ = estimate(
            ds,
            modes=mode_list,
            model=model,
            link=link,
            along=along,
            chains=chains,
            warmup=warmup,
            samples=samples,
            seed=seed,
            progress=update,
        )
    save_netcdf(est, output / "estimate.nc")
    figs = [p for q in est["quantity"].values for p in boundary_figure(est, output / f"boundary_{q}", quantity=str(q))]
    (output / "diagnostics.md").write_text(estimate_markdown(est))
    console.print(
        _table("posterior fits (NUTS; flagged: R-hat > 1.01, divergences or ESS < 100)", *_diagnostic_rows(est))
    )
    n_flag = int(est["flagged"].sum())
    err_console.print(
        f"{n_flag} of {est['flagged'].size} fits flagged; {time.perf_counter() - t0:.1f} s; wrote "
        f"{output / 'estimate.nc'}, {output / 'diagnostics.md'}, {', '.join(str(p) for p in figs)}"
    )


def _diagnostic_rows(est) -> tuple[list[str], list[list[str]]]:
    from .report import estimate_rows

    return estimate_rows(est)


@app.command("literature")
def literature_cmd(
    output: Path = typer.Option(Path("literature"), "--output", "-o", help="Output folder."),
    claims: Optional[str] = typer.Option(
        None, "--claims", "-c", help="Comma-separated claim keys (default: all); --list shows them."
    ),
    seeds: Optional[int] = typer.Option(
        None, "--seeds", "-s", min=2, max=2**30, help="Seeds per arm (default: each claim's own)."
    ),
    list_: bool = typer.Option(False, "--list", help="List the claims and exit."),
    set_: Optional[list[str]] = typer.Option(
        None,
        "--set",
        help="Override a field of every claim's scenario (repeatable), e.g. model.kind=mlp and population.mode=finite; "
        "a claim the override makes invalid is skipped with the reason.",
    ),
    plugin: Optional[list[Path]] = PluginOption,
) -> None:
    """Run the founding literature's claims in the stylized world and say which hold: one
    NetCDF per claim (written as each finishes; a rerun reuses the finished ones), a figure
    (claims.pdf/png), the switching effect on every mode (switching.pdf/png) and literature.md.
    With --set every claim runs on the changed scenario (another client model, real data).

    Example: silentfail literature -c teacher_bias,byzantine -o literature
    """
    _load_plugins(plugin)
    from .figures import literature_figure, switching_figure
    from .report import literature_markdown, literature_rows
    from .sim.literature import CLAIM_KEYS, CLAIMS, claim_with, get_claim, run_claims

    if list_:
        console.print(
            _table("literature claims", ["key", "claim", "statement"], [[c.key, c.title, c.statement] for c in CLAIMS])
        )
        return
    chosen = tuple(get_claim(k.strip()).key for k in claims.split(",")) if claims else CLAIM_KEYS
    extra = _overrides(set_)
    if extra:
        variants = {k: claim_with(k, extra) for k in chosen}
        for k, (_, why) in variants.items():
            if why is not None:
                err_console.print(f"skipped {k}: {why}")
        chosen = tuple(c for c, _ in variants.values() if c is not None)
        if not chosen:
            raise UserError("--set: no claim can run with these overrides (each one's reason is above)")
    bar, update = _progress()
    done = []
    with bar:
        results = run_claims(
            chosen,
            seeds,
            folder=output / "claims",
            progress=lambda key: (done.append(key), update(len(done), len(chosen))),
        )
    figs = literature_figure(results, output / "claims")
    if "adaptive_switching" in results:
        figs += switching_figure(results["adaptive_switching"], output / "switching")
    (output / "literature.md").write_text(literature_markdown(results, figs[1]))
    console.print(_table("literature claims (effect signed so that the claim predicts > 0)", *literature_rows(results)))
    err_console.print(f"wrote {output / 'claims'}/*.nc, {output / 'literature.md'}, {', '.join(str(p) for p in figs)}")


@app.command("transfer")
def transfer_cmd(
    output: Path = typer.Option(Path("transfer"), "--output", "-o", help="Output folder."),
    quick: bool = typer.Option(
        False,
        "--quick",
        help="Claims at 12 rounds and 4 seeds per arm; the phase grid at 100 clients and 12 rounds; an OOD panel of 4 "
        "clients and 32 held-out draws per cell for the Monte Carlo models.",
    ),
    claims: Optional[str] = typer.Option(
        None, "--claims", "-c", help="Comma-separated claim keys (default: all; `literature --list` shows them)."
    ),
    models: str = typer.Option("linear,mlp,lora,digits", "--models", help="Client models, the reference first."),
    seeds: Optional[int] = typer.Option(
        None, "--seeds", "-s", min=2, max=4096, help="Seeds per arm and per phase cell (default: the claims' own, 8)."
    ),
    no_phase: bool = typer.Option(False, "--no-phase", help="Only the claims, not the coarse phase diagram."),
    set_: Optional[list[str]] = typer.Option(
        None, "--set", help="Override a field of every run (repeatable), e.g. model.width=64."
    ),
) -> None:
    """Do the conclusions survive a nonlinear client model and real data? Run the
    literature's claims and a coarse phase diagram (lambda x shift strength, the phase
    preset) under the linear readout, the flax MLP, the frozen backbone with a LoRA adapter
    and the MLP on real data (scikit-learn's handwritten digits), all on the clients' finite
    samples, and write the side-by-side table (claim, each model's verdict with effect and
    SE, transfers?), the regime agreement per mode, transfer.md, transfer.pdf/png and the
    NetCDF results. Every finished experiment is saved under the output folder (claims/,
    phase/) and reused by a rerun with the same settings, so an interrupted table resumes.

    Example: silentfail transfer --quick -c byzantine,underrepresented -o transfer
    """
    from .figures import transfer_figure
    from .report import transfer_markdown
    from .sim.literature import CLAIM_KEYS, get_claim
    from .sim.trace import save_netcdf
    from .sim.transfer import (
        MODEL_KINDS,
        QUICK_CLAIMS,
        QUICK_PHASE,
        QUICK_SEEDS,
        regime_rows,
        transfer_claims,
        transfer_phase,
        transfer_rows,
    )

    kinds = tuple(k.strip() for k in models.split(","))
    bad = [k for k in kinds if k not in MODEL_KINDS]
    if bad or len(kinds) < 2:
        raise UserError(f"--models: {', '.join(bad) or models!r}: give two or more of {', '.join(MODEL_KINDS)}")
    keys = tuple(get_claim(k.strip()).key for k in claims.split(",")) if claims else CLAIM_KEYS
    extra = _overrides(set_)
    size_claims = {**(QUICK_CLAIMS if quick else {}), **extra}
    size_phase = {**(QUICK_PHASE if quick else {}), **extra}
    seeds = seeds if seeds is not None else (QUICK_SEEDS if quick else None)
    output.mkdir(parents=True, exist_ok=True)
    bar, update = _progress()
    done = []
    with bar:
        ds = transfer_claims(
            keys,
            kinds,
            seeds,
            size_claims,
            progress=lambda *_: (done.append(1), update(len(done), len(keys) * len(kinds))),
            folder=output / "claims",
        )
    save_netcdf(ds, output / "transfer_claims.nc")
    phase = None
    if not no_phase:
        err_console.print(f"phase grid under {', '.join(kinds)} ...")
        phase = transfer_phase(kinds, seeds or 8, size_phase, folder=output / "phase")
        save_netcdf(phase, output / "transfer_phase.nc")
    figs = transfer_figure(ds, phase, output / "transfer")
    (output / "transfer.md").write_text(transfer_markdown(ds, phase, figs[1]))
    console.print(_table("claims under each client model (effect ± SE)", *transfer_rows(ds)))
    if phase is not None:
        console.print(_table("phase regimes: agreement with the linear readout", *regime_rows(phase)))
    err_console.print(f"wrote {output / 'transfer.md'}, {', '.join(str(p) for p in figs)} and the NetCDF results")


@app.command("influences")
def influences_cmd(
    scenario_file: Optional[Path] = typer.Argument(None, help="A scenario TOML file (default: the 'default' preset)."),
    preset_name: Optional[str] = typer.Option(None, "--preset", "-p", help="A named preset instead of a file."),
    quick: bool = typer.Option(False, "--quick", help="At most 60 clients and 12 rounds: all 30 pairs in minutes."),
    seeds: Optional[int] = typer.Option(None, "--seeds", "-s", min=2, max=4096, help="Seeds per arm (default 16)."),
    pair: Optional[list[str]] = typer.Option(
        None, "--pair", help="SOURCE:TARGET, e.g. amplified_bias:fairness_collapse (repeatable; default: all 30)."
    ),
    delta: float = typer.Option(0.25, "--delta", min=1e-6, max=10.0, help="Intervention strength (move / model norm)."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Override a field (repeatable)."),
    output: Path = typer.Option(Path("influences"), "--output", "-o", help="Output folder."),
    annotate: Optional[Path] = typer.Option(
        None,
        "--annotate",
        help="Also write a taxonomy extension (JSON) whose annotations set each paper edge's note to its measured "
        "verdict; pass it to the taxonomy commands with --file.",
    ),
    plugin: Optional[list[Path]] = PluginOption,
) -> None:
    """Test the paper's influence edges between the six modes: for every ordered pair
    (or --pair), raise the source through its mechanism, measure the target's response
    with its SE over seeds, and block the source's mechanism to separate the effect
    through the source from the cause's direct effect. Writes influences.csv,
    influences.md, influences.pdf/png and influences.nc.

    Example: silentfail influences --quick -o influences --annotate influences/taxonomy.json
    """
    _load_plugins(plugin)
    import json

    from .figures import influence_figure
    from .report import influence_note, influence_rows, influences_markdown
    from .sim.influence import influences, parse_pairs, reduced, to_frame

    output = _output_dir(output)
    annotate = _output_file(annotate, "--annotate")
    pairs = parse_pairs(pair) if pair else None
    sc = _scenario(scenario_file, preset_name, None, "default")
    sc = reduced(sc) if quick else sc
    overrides = _overrides(set_)
    sc = sc.replace(**overrides) if overrides else sc
    ds = influences(sc, pairs=pairs, seeds=seeds or 16, delta=delta)
    output.mkdir(parents=True, exist_ok=True)
    to_frame(ds).to_csv(output / "influences.csv", index=False)
    ds.to_netcdf(output / "influences.nc")
    figs = influence_figure(ds, output / "influences")
    (output / "influences.md").write_text(influences_markdown(ds, figs[1]))
    if annotate is not None:
        rows = [{k: ds[k].values[i].item() for k in ds.data_vars} for i in range(ds.sizes["pair"])]
        notes = [
            {"source": r["source"], "target": r["target"], "kind": "influences", "note": influence_note(r)}
            for r in rows
            if r["strength"] != "none"
        ]
        annotate.parent.mkdir(parents=True, exist_ok=True)
        annotate.write_text(json.dumps({"annotations": notes}, indent=1) + "\n")
    console.print(_table("influences (effect through the source, verdict)", *influence_rows(ds)))
    wrote = [output / "influences.csv", output / "influences.md", output / "influences.nc", *figs]
    if annotate is not None:
        wrote.append(annotate)
    err_console.print(f"wrote {', '.join(str(p) for p in wrote)} in {ds.attrs['wall_s']:.0f} s")


@app.command("paper")
def paper_cmd(
    quick: bool = typer.Option(
        False, "--quick", help="Reduced phase grid, seeds and NUTS run (minutes; what CI builds)."
    ),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Build folder (default: the paper's source folder, paper/)."
    ),
    source: Optional[Path] = typer.Option(
        None, "--source", help="Folder holding main.tex (default: paper/ of this checkout)."
    ),
    no_pdf: bool = typer.Option(False, "--no-pdf", help="Regenerate figures, tables and numbers only; skip latexmk."),
) -> None:
    """Regenerate every figure, table and number of the paper from code and build the PDF
    with latexmk (needs TeX Live: apt-get install latexmk texlive-latex-recommended
    texlive-fonts-recommended poppler-utils).

    Example: silentfail paper --quick -o /tmp/paper
    """
    import time

    from .paper import build

    t0 = time.perf_counter()
    out = build(
        output,
        quick=quick,
        source=source,
        pdf=not no_pdf,
        progress=lambda step: err_console.print(f"[{time.perf_counter() - t0:6.1f} s] {step}"),
    )
    err_console.print(
        f"built {out / 'main.pdf' if not no_pdf else out / 'generated'} in {time.perf_counter() - t0:.1f} s"
    )


@app.command("check")
def check_cmd(
    hypothesis: str = typer.Argument(
        ...,
        help='e.g. "for all lambda <= 0.1 and shift >= 0.5, P(silent fairness collapse) >= 0.9 under secure aggregation + central DP"',
    ),
    scenario_file: Optional[Path] = typer.Option(
        None, "--scenario", help="A scenario TOML file (default: the 'phase' preset)."
    ),
    preset_name: Optional[str] = typer.Option(None, "--preset", "-p", help="A named preset."),
    seeds: int = typer.Option(16, "--seeds", "-s", min=1, max=2**30, help="Seeds per cell of the region."),
    points: int = typer.Option(5, "--points", min=1, help="Grid values per bounded axis."),
    model: str = typer.Option(
        "cell", "--model", "-m", help="cell (independent Jeffreys posteriors), probit or gp (two axes)."
    ),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Folder for the per-cell posterior (cells.nc) and the sweep."
    ),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Override a field (repeatable)."),
    plugin: Optional[list[Path]] = PluginOption,
) -> None:
    """The posterior probability that a hypothesis holds over its whole region, and where it fails.

    Example: silentfail check "for all lambda <= 0.1 and shift >= 0.5, P(silent fairness collapse) >= 0.9"
    """
    _load_plugins(plugin)
    from .hypothesis import CELL_MODELS, check, parse_hypothesis
    from .sim.trace import save_netcdf

    h = parse_hypothesis(hypothesis)  # a bad hypothesis is reported before any work
    if model not in CELL_MODELS:
        raise UserError(f"unknown model {model!r}; models: {', '.join(CELL_MODELS)}")
    sc = _scenario(scenario_file, preset_name, set_, "phase")
    bar, update = _progress()
    with bar:
        res = check(
            h,
            sc,
            seeds=seeds,
            points=points,
            model=model,
            progress=update,
            store=(output / "store") if output is not None else None,
        )
    import json

    from rich.text import Text

    from .sim.scenario import scenario_from_dict

    _print_setting(scenario_from_dict(json.loads(res.sweep.attrs["scenario"])))
    console.print(_table("per cell", *res.cell_table()))
    console.print(Text(res.summary()))
    if output is not None:
        save_netcdf(res.cells, output / "cells.nc")
        err_console.print(f"wrote {output / 'cells.nc'}, {output / 'store' / 'sweep.nc'}")


def _print_assessment(sc, seeds: int) -> None:
    """The summary across seeds of one scenario (a sweep with no axes)."""
    import numpy as np
    from rich.text import Text

    from .report import caused_text, detection_window, persistence_text
    from .sim.scenario import MODES
    from .sim.sweep import sweep
    from .sim.verdict import Judgement, summarize

    ds = sweep(sc, {}, seeds=seeds, theory=False)  # the summary reads the simulated verdicts only
    valid = ds["valid_run"].values.astype(bool)
    if not valid.all():  # the seeds that diverged are named and left out of the summary
        bad = np.flatnonzero(~valid)
        worst = float(np.nanmax(ds["eta_lambda_max"].values[bad]))
        why = (
            f"eta * lambda_max = {worst:.3g} > 2 (local steps diverge)"
            if worst >= 2
            else "non-finite values (a diverging server step)"
        )
        err_console.print(
            Text(
                f"diverged in {bad.size} of {seeds} seeds ({', '.join(map(str, bad))}): {why}; "
                "the summary is over the other seeds"
            )
        )
        if bad.size == seeds:
            raise UserError("every seed diverged: lower personalization.eta or federation.server_lr")
        j = Judgement(
            *(ds[k].values[valid] for k in ("first_detection", "detected", "silent", "delay", "early_warning"))
        )
        summ = summarize(ds["failure_round"].values[valid], j, axis=0)
        ds = ds.assign({k: (("mode",), v) for k, v in summ.items()})
    f = lambda v, d=2: "-" if v != v else f"{v:.{d}f}"  # noqa: E731 - NaN prints as '-'
    rows = []
    for m in MODES:
        g = lambda k, m=m: float(ds[k].sel(mode=m))  # noqa: E731
        null = f(g("null_failure_rate")) + caused_text(ds, m)
        rows.append(
            [
                m,
                f(g("p_fail")),
                f(g("p_early_warning")),
                f(g("p_detected_given_fail")),
                f(g("p_silent_given_fail")),
                f(g("p_silent")),
                null,
                f"{f(g('delay_median'), 1)} [{f(g('delay_q10'), 1)}, {f(g('delay_q90'), 1)}]",
            ]
        )
    console.print(
        _table(
            f"{sc.name}: across {seeds} seeds (detectors calibrated to alpha {sc.monitor.alpha} on "
            f"{'failure-free ' if sc.monitor.null == 'no_failure' else ''}null runs; detection window "
            f"{detection_window(sc.monitor.lead, sc.monitor.grace)}; failure = {persistence_text(sc.thresholds)})",
            [
                "mode",
                "P(fail)",
                "P(early warning)",
                "P(detected | fail)",
                "P(silent | fail)",
                "P(silent)",
                "P(fail | null)",
                "delay median [10%, 90%]",
            ],
            rows,
        )
    )


def _print_verdict(v) -> None:
    from .report import caused_text, detection_window
    from .sim.scenario import MODES

    rows = []
    for m in MODES:
        tf = int(v["failure_round"].sel(mode=m))
        cells = []
        for d in v.detector.values:
            r = int(v["detection_round"].sel(mode=m, detector=d))
            w = bool(v["watches"].sel(mode=m, detector=d))
            cells.append(str(r) if r >= 0 else ("-" if w else "."))
        state = (
            "SILENT"
            if bool(v["silent"].sel(mode=m))
            else ("detected" if bool(v["detected"].sel(mode=m)) else ("ok" if tf < 0 else "?"))
        )
        if bool(v["early_warning"].sel(mode=m)):
            state += " (early warning)"
        if "undecided" in v and bool(v["undecided"].sel(mode=m)):
            state += " (undecided: the failure verdict flips within 2 SE)"
        if bool(v["caused_without_shift"].sel(mode=m)):
            state += f" [fails in {float(v['null_failure_rate'].sel(mode=m)):.0%} of null runs{caused_text(v, m)}]"
        rows.append([m, str(tf) if tf >= 0 else "-", *cells, state])
    console.print(
        _table(
            f"verdict (alpha {v.attrs['alpha']}; detection window {detection_window(v.attrs['lead'], v.attrs['grace'])}, earlier "
            "alarms are early warnings; cells: first alarm round, '-' no alarm, '.' does not watch)",
            ["mode", "T_f", *[str(d) for d in v.detector.values], "verdict"],
            rows,
        )
    )


# ------------------------------------------------------------------ prove


@app.command("prove")
def prove(
    names: Optional[list[str]] = typer.Argument(None, help="Result names (default: all)."),
    latex: bool = typer.Option(False, "--latex", help="Print LaTeX with the derivation steps instead of pretty text."),
    verify: bool = typer.Option(
        False,
        "--verify",
        help="Check each result against the simulation; print the worst error and exit 1 if one exceeds its tolerance.",
    ),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="With --latex: write the LaTeX file here."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the random parameter draws of --verify."),
) -> None:
    """Print the closed-form results derived with sympy, optionally as LaTeX or verified
    against the simulation.

    Example: silentfail prove --latex -o paper/generated/theorems.tex
    """

    from .proofs import BUILDERS, latex_document, result
    from .proofs._result import plain_text

    chosen = list(names or BUILDERS)
    unknown = [n for n in chosen if n not in BUILDERS]
    if unknown:
        raise UserError(f"unknown result(s) {', '.join(unknown)}; results: {', '.join(BUILDERS)}")
    if output is not None and not latex:
        raise UserError("--output needs --latex")
    if latex:
        text = latex_document(chosen)
        if output is not None:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(text)
            err_console.print(f"wrote {output}")
        else:
            sys.stdout.write(text)
    else:
        for name in chosen:
            r = result(name)
            console.print(f"[bold]{escape(name)}[/bold]: {escape(r.title)}", markup=True)
            console.print(r.pretty(), markup=False, highlight=False)
            console.print(f"  holds when {plain_text(r.conditions)}", markup=False)
    if verify:
        from .verify import verify_all

        rows, failed = [], False
        for name, check in verify_all(chosen, seed).items():
            if check is None:
                rows.append([name, "-", "checked symbolically (no simulation counterpart)", "-", "-"])
                continue
            failed |= not check.ok
            rows.append([name, f"{check.error:.2e}", check.kind, f"{check.tolerance:g}", "yes" if check.ok else "NO"])
        console.print(
            _table("closed form vs simulation", ["result", "worst error", "measured as", "tolerance", "ok"], rows)
        )
        if failed:
            raise typer.Exit(1)


# ------------------------------------------------------------------ cite


@app.command("cite")
def cite(
    nodes: Optional[list[str]] = typer.Argument(None, help="Node ids, names or aliases."),
    preset_name: Optional[str] = typer.Option(
        None, "--preset", "-p", help="Also cite what this preset scenario exercises."
    ),
    scenario_file: Optional[Path] = typer.Option(
        None, "--scenario", help="Also cite what this scenario TOML exercises."
    ),
) -> None:
    """Print BibTeX for the package and for the references behind the named nodes (or
    behind everything a scenario you simulated exercises).

    Example: silentfail cite proximal alignment_erosion
    """
    from .citation import citation

    sc = None
    if preset_name is not None and scenario_file is not None:
        raise UserError("give --preset or --scenario, not both")
    if preset_name is not None or scenario_file is not None:
        from .sim.scenario import load_scenario, preset

        sc = preset(preset_name) if preset_name is not None else load_scenario(scenario_file)
    sys.stdout.write(citation(nodes or (), scenario=sc))


# ------------------------------------------------------------------ entry point


def compilation_cache_dir() -> Path | None:
    """Where the CLI keeps JAX's persistent compilation cache: ``$SILENTFAIL_CACHE_DIR``,
    else ``$XDG_CACHE_HOME/silentfail/jax`` (``~/.cache/silentfail/jax``); None when
    ``SILENTFAIL_CACHE_DIR`` is empty (no cache) or the user set ``JAX_COMPILATION_CACHE_DIR``
    (theirs is used). A cached program is keyed by the program and the compiler, so it
    never changes a number; a second run of the same scenario loads its programs
    instead of compiling them (``benchmarks/README.md``, compile cache)."""
    import os

    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return None
    chosen = os.environ.get("SILENTFAIL_CACHE_DIR")
    if chosen == "":
        return None
    if chosen:
        return Path(chosen)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "silentfail" / "jax"


def result_cache_dir() -> Path | None:
    """Where the CLI keeps the results of batches of runs (``sim/result_cache.py``):
    ``$SILENTFAIL_RESULT_CACHE``, else ``$XDG_CACHE_HOME/silentfail/results``
    (``~/.cache/silentfail/results``); None when ``SILENTFAIL_RESULT_CACHE`` is empty.
    A result is keyed by its inputs and the package's code, so it never changes a
    number: a second ``simulate`` of a scenario reads its detector calibration."""
    import os

    chosen = os.environ.get("SILENTFAIL_RESULT_CACHE")
    if chosen is not None:
        return Path(chosen) if chosen else None
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "silentfail" / "results"


def _enable_compilation_cache() -> None:
    """Point JAX's persistent compilation cache at :func:`compilation_cache_dir` (before
    JAX is imported: JAX reads these variables when it starts)."""
    import os

    path = compilation_cache_dir()
    if path is None:
        return
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: run without the cache
        return
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(path)
    # every program, the small ones too: a warm `simulate --preset default` compiled 21
    # programs under 0.5 s each (1.35 s in all) on every call when only slower ones were kept
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


def _quiet_logs(argv: list[str]) -> None:
    """Unless ``--verbose`` is given (before the command), keep XLA's and the runtime's
    C++ log lines ("Very slow compile", connection notices) off stderr: their minimum
    level becomes FATAL (before JAX starts; a level the user set is kept). Errors still
    reach the user as Python exceptions, printed as one line."""
    import os

    command = next((i for i, a in enumerate(argv) if not a.startswith("-")), len(argv))
    if "--verbose" not in argv[:command]:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("GLOG_minloglevel", "3")


def main(argv: Optional[list[str]] = None) -> None:
    """Console entry point: run the app, turning errors into one line and exit code 2."""
    from pydantic import ValidationError

    _enable_compilation_cache()
    _quiet_logs(list(argv if argv is not None else sys.argv[1:]))
    from .sim import result_cache

    _STATE["debug"] = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        with result_cache.enabled(result_cache_dir()):
            code = app(args=argv, prog_name="silentfail", standalone_mode=False)
    except SystemExit:
        raise
    except _USAGE_ERROR as exc:  # click's usage / bad-parameter errors: one line, naming the option
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: its help, as before
            exc.show()
            sys.exit(2)
        where = f"{exc.ctx.command_path}: " if getattr(exc, "ctx", None) is not None else ""
        err_console.print(f"error: {where}{' '.join(exc.format_message().split())}")
        sys.exit(2)
    except typer.Abort:
        err_console.print("error: aborted")
        sys.exit(1)
    except (
        UserError,
        SchemaError,
        ValidationError,
        FileNotFoundError,
        FileExistsError,
        ValueError,
        RuntimeError,
    ) as exc:
        if _STATE["debug"]:
            raise
        err_console.print(
            f"error: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}",
            markup=False,
            highlight=False,
        )
        sys.exit(2)
    except Exception as exc:  # noqa: BLE001 - the CLI promises no traceback without --debug
        if _STATE["debug"]:
            raise
        err_console.print(
            f"error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", markup=False, highlight=False
        )
        sys.exit(1)
    if isinstance(code, int) and code:
        sys.exit(code)


#: click's (vendored by typer) base class of usage errors: missing arguments, bad option values
_USAGE_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


if __name__ == "__main__":
    main()
