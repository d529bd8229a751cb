"""Cron and systemd: the documented crontab line and the shipped unit are valid and run the
right commands; cron runs are silent, interactive runs show progress."""

from __future__ import annotations

import configparser
import os
import pty
import re
import select
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from apscheduler.triggers.cron import CronTrigger

from pipeline.cli import build_parser
from pipeline.config import load_config
from tests.conftest import REPO, run_cli, write_config
from tests.newssite import NewsSite

UNIT = REPO / "config" / "newswire.service"
INSTALL_DIR = "/opt/newswire"


def readme_crontab_line() -> str:
    lines = re.findall(r"^(\*/\d+ [^\n]*newswire[^\n]*)$", (REPO / "README.md").read_text(),
                       re.M)
    assert len(lines) == 1, lines
    return lines[0]


def test_readme_crontab_line_runs_once_quietly_with_the_config() -> None:
    line = readme_crontab_line()
    fields = line.split(None, 5)
    CronTrigger.from_crontab(" ".join(fields[:5]))  # raises on a bad schedule
    command = shlex.split(fields[5])
    assert command[:3] == ["cd", INSTALL_DIR, "&&"]
    assert command[3] == ".venv/bin/newswire"  # what `make` installs
    args = build_parser().parse_args(command[4:])
    assert (args.command, args.quiet, args.all) == ("once", True, False)
    assert (REPO / args.config).is_file()


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(UNIT)
    return parser


def test_unit_runs_the_daemon_and_may_write_only_the_database_directory() -> None:
    service = unit()["Service"]
    command = shlex.split(service["ExecStart"])
    assert command[0] == f"{INSTALL_DIR}/.venv/bin/newswire"
    args = build_parser().parse_args(command[1:])
    assert args.command == "daemon"
    config = Path(args.config)
    assert config.is_relative_to(INSTALL_DIR) and service["WorkingDirectory"] == INSTALL_DIR
    # The database of the shipped config lands in the one directory the unit may write.
    shipped = load_config(REPO / config.relative_to(INSTALL_DIR))
    database_dir = Path(INSTALL_DIR) / shipped.database.parent.relative_to(REPO)
    assert service["ReadWritePaths"] == str(database_dir)
    assert service["KillSignal"] == "SIGTERM" and service["RestartPreventExitStatus"] == "2"
    assert shlex.split(service["ExecReload"]) == ["/bin/kill", "-HUP", "$MAINPID"]
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_unit_passes_systemd_analyze(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    script = Path(sys.executable).parent / "newswire"  # this environment's console script
    text = UNIT.read_text().replace(f"{INSTALL_DIR}/.venv/bin/newswire", str(script))
    text = text.replace(INSTALL_DIR, str(REPO))
    text = re.sub(r"^(User|Group)=newswire$", r"\1=root", text, flags=re.M)
    (tmp_path / "newswire.service").write_text(text)
    result = subprocess.run([analyze, "verify", str(tmp_path / "newswire.service")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "newswire.service" not in result.stderr  # no warning about our unit


def test_cron_run_is_silent_even_when_a_feed_fails(site: NewsSite, tmp_path: Path) -> None:
    site.set_fault("/feeds/atom.xml", "status", code=500)
    config = write_config(tmp_path / "newswire.yaml",
                          [site.feed_url("rss"), site.feed_url("atom")])
    result = run_cli("once", "-q", config=config)
    assert (result.code, result.stdout, result.stderr) == (0, "", "")
    status = run_cli("status", config=config)
    assert "failing" in status.stdout and "500" in status.stdout  # recorded, not lost


def run_in_terminal(args: list[str], timeout: float = 120) -> tuple[int, str]:
    """Run `python -m pipeline ARGS` with a pseudo-terminal as stdout and stderr."""
    controller, terminal = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen([sys.executable, "-m", "pipeline", *args], cwd=REPO,
                               stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal,
                               env=env, close_fds=True)
    os.close(terminal)
    output = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # the terminal closed: the process is done
                    break
                if not chunk:
                    break
                output += chunk
            elif process.poll() is not None:
                break
    finally:
        os.close(controller)
    return process.wait(timeout=30), output.decode("utf-8", "replace")


def test_interactive_run_shows_progress(site: NewsSite, tmp_path: Path) -> None:
    site.set_fault("/feeds/atom.xml", "status", code=500)
    config = write_config(tmp_path / "newswire.yaml",
                          [site.feed_url("rss"), site.feed_url("atom"), site.feed_url("rdf")])
    code, output = run_in_terminal(["--config", str(config), "once"])
    assert code == 0, output
    assert "polling feeds" in output and "3/3" in output
    assert "\x1b[" in output  # drawn with terminal control sequences
    assert f"✗ {site.feed_url('atom')}: 500 0 new (HTTP 500)" in output
    assert f"✓ {site.feed_url('rss')}: 200 5 new" in output
    assert "3 feeds polled: 2 updated" in output  # the summary as well

    quiet_code, quiet = run_in_terminal(["--config", str(config), "once", "--all", "-q"])
    assert quiet_code == 0 and quiet == ""

    export_code, exported = run_in_terminal(["--config", str(config), "export",
                                             str(tmp_path / "out")])
    assert export_code == 0 and "exporting" in exported and "exported 5 articles" in exported
