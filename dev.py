#!/usr/bin/env python3
"""Set up a development environment and run wattplan's jobs: ``python3 dev.py demo|test``.

Needs nothing but Python 3.11+. It creates ``.venv``, installs ``wattplan[dev]`` into it
(again only when pyproject.toml changed), installs the Debian packages the tests drive
(Chromium for the browser tests, Node.js for the independent OAuth server) when they are
missing, starts the local PostgreSQL and Mosquitto when they are installed but down, and
then runs the job:

* ``demo``: ``wattplan demo``, the main job end to end on the embedded sandbox and SQLite;
* ``test``: ruff, mypy and the whole pytest suite (``-n 2``), notebooks included.

Extra arguments after ``test`` go to pytest (``python3 dev.py test -k vault``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("WATTPLAN_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"

DEBIAN_PACKAGES = {
    # command that must exist -> Debian package that provides it
    "/usr/bin/chromium": "chromium",
    "/usr/bin/chromedriver": "chromium-driver",
    "node": "nodejs",
    "npm": "npm",
}


def say(msg: str) -> None:
    print(f"[dev] {msg}", flush=True)


def run(cmd: list[str], **kw: object) -> None:
    say("$ " + " ".join(cmd))
    subprocess.run(cmd, check=True, cwd=ROOT, **kw)  # type: ignore[call-overload]


def ensure_venv() -> None:
    if not PY.exists():
        say(f"creating virtual environment {VENV.name}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / ".wattplan-installed"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    run([str(PY), "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    run([str(PY), "-m", "pip", "install", "--quiet", "-e", ".[dev]"])
    stamp.write_text(digest)


def _have(cmd: str) -> bool:
    return Path(cmd).exists() if cmd.startswith("/") else shutil.which(cmd) is not None


def ensure_debian_packages() -> None:
    missing = sorted({pkg for cmd, pkg in DEBIAN_PACKAGES.items() if not _have(cmd)})
    if not missing:
        return
    apt = shutil.which("apt-get")
    if apt is None:
        say(f"cannot install {', '.join(missing)}: no apt-get; the tests that need them will fail")
        return
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run([*prefix, apt, "update", "-qq"], env=env)
    run([*prefix, apt, "install", "-y", "-qq", "--no-install-recommends", *missing], env=env)


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def ensure_services() -> None:
    """Start PostgreSQL and Mosquitto when they are installed here but not running."""
    if not _port_open(5432) and shutil.which("pg_ctlcluster") and Path("/etc/postgresql").is_dir():
        for version in sorted(os.listdir("/etc/postgresql")):
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                check=False,
            )
    if not _port_open(1883) and shutil.which("mosquitto"):
        conf = "/etc/mosquitto/mosquitto.conf"
        subprocess.run(
            ["mosquitto", "-d", *(["-c", conf] if Path(conf).exists() else [])], check=False
        )
    for port, name in ((5432, "PostgreSQL"), (1883, "Mosquitto")):
        say(f"{name} on 127.0.0.1:{port}: {'up' if _port_open(port) else 'DOWN'}")


def demo(args: list[str]) -> int:
    ensure_venv()
    cmd = [str(BIN / "wattplan"), "demo", *args]
    return subprocess.run(cmd, cwd=ROOT).returncode


def test(args: list[str]) -> int:
    ensure_venv()
    ensure_debian_packages()
    ensure_services()
    run([str(BIN / "ruff"), "check", "src", "tests", "benchmarks", "dev.py"])
    run([str(BIN / "ruff"), "format", "--check", "src", "tests", "benchmarks", "dev.py"])
    run([str(BIN / "mypy")])
    cmd = [str(PY), "-m", "pytest", "-n", "2", "--nbmake", "tests", "notebooks", *args]
    say("$ " + " ".join(cmd))
    return subprocess.run(cmd, cwd=ROOT).returncode


def main() -> int:
    jobs = {"demo": demo, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in jobs:
        print(__doc__)
        return 2
    try:
        return jobs[sys.argv[1]](sys.argv[2:])
    except subprocess.CalledProcessError as exc:
        say(f"failed with exit code {exc.returncode}: {' '.join(map(str, exc.cmd))}")
        return exc.returncode or 1


if __name__ == "__main__":
    sys.exit(main())
