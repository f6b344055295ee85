"""``silentfail launch``: run one command in N local processes that form one
multi-process JAX run (``silentfail.sim.distributed``) over 127.0.0.1.

Each process gets the coordinator address, the process count and its id in the
environment (``SILENTFAIL_COORDINATOR``, ``SILENTFAIL_NUM_PROCESSES``,
``SILENTFAIL_PROCESS_ID``), which the commands' ``--coordinator``, ``--num-processes``
and ``--process-id`` options read. Process 0's output is passed through (without the
collective library's connection lines unless ``verbose``); the others' is kept and shown
only when one of them fails. When a process fails, the rest are stopped (they would
otherwise wait for it in a collective until the runtime's timeout).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence

from .sim.distributed import ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID

#: commands that take the multi-process options
COMMANDS = ("simulate", "phase")
#: stderr lines of the runtime's own that say nothing to a user (shown with ``verbose``)
NOISE = ("[Gloo]", "Gloo ", "distributed.cc", "coordination_service", "client.cc", "preemption_notifier")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now.

    Returns:
        The port number.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_command(command: Sequence[str]) -> None:
    """The command must be a silentfail command that runs over processes.

    Args:
        command: the words after ``--``, e.g. ``["simulate", "--preset", "default"]``.

    Raises:
        ValueError: no command, or one that does not take the multi-process options.
    """
    if not command:
        raise ValueError("launch needs a command after --, e.g. silentfail launch --processes 2 -- simulate")
    if command[0] not in COMMANDS:
        raise ValueError(f"launch runs {', '.join(COMMANDS)} over processes, not {command[0]!r}")
    given = [w for w in command if w.split("=")[0] in ("--coordinator", "--num-processes", "--process-id")]
    if given:
        raise ValueError(f"launch sets the process options itself; drop {', '.join(given)}")


def _relay(stream, sink, verbose: bool) -> None:
    for line in iter(stream.readline, ""):
        if verbose or not any(n in line for n in NOISE):
            sink.write(line)
            sink.flush()


def launch(
    command: Sequence[str], processes: int, *, port: int | None = None, verbose: bool = False, poll_s: float = 0.1
) -> int:
    """Run ``silentfail COMMAND`` in ``processes`` local processes joined into one run.

    Args:
        command: the silentfail command and its options.
        processes: N >= 1.
        port: the coordinator's port on 127.0.0.1 (default: a free one).
        verbose: pass every stderr line through, the runtime's own included.
        poll_s: how often the processes are checked.

    Returns:
        0 when every process succeeded, else the exit code of the first that failed.

    Raises:
        ValueError: a bad command or process count.
    """
    check_command(command)
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ValueError(f"--processes must be an integer >= 1, got {processes!r}")
    port = free_port() if port is None else port
    procs, logs, relays = [], [], []
    for i in range(processes):
        env = dict(os.environ)
        env.update({ENV_COORDINATOR: f"127.0.0.1:{port}", ENV_NUM_PROCESSES: str(processes), ENV_PROCESS_ID: str(i)})
        argv = [sys.executable, "-m", "silentfail", *command]
        if i == 0:
            p = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True, bufsize=1)
            relay = threading.Thread(target=_relay, args=(p.stderr, sys.stderr, verbose), daemon=True)
            relay.start()
            relays.append(relay)
            logs.append(None)
        else:
            log = tempfile.TemporaryFile(mode="w+")
            p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True)
            logs.append(log)
        procs.append(p)
    code = 0
    try:
        while any(p.poll() is None for p in procs):
            failed = [i for i, p in enumerate(procs) if p.returncode not in (None, 0)]
            if failed:
                code = procs[failed[0]].returncode
                break
            time.sleep(poll_s)
        else:
            failed = [i for i, p in enumerate(procs) if p.returncode != 0]
            code = procs[failed[0]].returncode if failed else 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        for r in relays:
            r.join(timeout=5)
    own_error = procs[0].returncode not in (0, None, -15)  # then process 0 printed it (the others' is the same)
    for i, (p, log) in enumerate(zip(procs, logs)):
        if log is not None and not own_error and p.returncode not in (0, None, -15):
            log.seek(0)
            text = "".join(line for line in log if verbose or not any(n in line for n in NOISE)).strip()
            if text:
                sys.stderr.write(f"[process {i}] " + text.replace("\n", f"\n[process {i}] ") + "\n")
        if log is not None:
            log.close()
    return code
