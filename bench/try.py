"""`make try`: SealGate against fake providers, without a single key, in one command.

    python bench/try.py [--port N]      (make try [FAKE_PORT=N])

Starts bench/fake_provider.py on 127.0.0.1:N (default: `DEFAULT_PORT`; 0 picks a free one),
points a copy of bench/fake.pyfun at the port it really got, and runs the supervisor with it,
as `make run` does. Ctrl-C (or SIGTERM) stops the hub, then the fakes; if either one ends,
the other is stopped too. The exit status is the supervisor's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fake_provider import DEFAULT_PORT, pyfun_for

ROOT = Path(__file__).resolve().parent.parent


def start_fakes(port: int) -> tuple[subprocess.Popen[str], int]:
    """The fakes' process and the port it listens on (it prints it first)."""
    fakes = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "fake_provider.py"), "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert fakes.stdout is not None
    line = fakes.stdout.readline()
    if not line.strip().isdigit():
        fakes.wait()
        sys.exit(
            f"try: the fake providers did not start (exit {fakes.returncode}); for another"
            " port: make try FAKE_PORT=N (0: any free port)"
        )
    return fakes, int(line)


def write_config(port: int) -> Path:
    """The fakes' configuration on `port`, in a directory both service users can read."""
    directory = Path(tempfile.mkdtemp(prefix="sealgate-try-"))
    directory.chmod(0o755)
    config = directory / "fake.pyfun"
    config.write_text(pyfun_for(port))
    config.chmod(0o644)
    return config


def stop(process: subprocess.Popen[str] | subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"the fake providers' port on 127.0.0.1 (default {DEFAULT_PORT}; 0: any free)",
    )
    args = parser.parse_args(argv)
    fakes, port = start_fakes(args.port)
    config = write_config(port)
    hub: subprocess.Popen[bytes] | None = None
    stopping: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)
        if hub is not None and hub.poll() is None:
            hub.send_signal(signal.SIGTERM)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    try:
        print(f"try: fake providers on 127.0.0.1:{port}, configuration {config}", flush=True)
        hub = subprocess.Popen(
            [sys.executable, "-I", str(ROOT / "supervisor.py")],
            env={**os.environ, "HUB_CONFIG": str(config)},
        )
        while hub.poll() is None:
            if fakes.poll() is not None and not stopping:
                print("try: the fake providers stopped; stopping the hub", file=sys.stderr)
                stopping.append(0)
                hub.send_signal(signal.SIGTERM)
            time.sleep(0.2)
        return hub.returncode
    finally:
        if hub is not None:
            stop(hub)
        stop(fakes)
        shutil.rmtree(config.parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
