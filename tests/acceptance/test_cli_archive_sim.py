"""An archive on this machine as a user starts it: ``dev webdav-server`` and ``dev archive-sim``.

Both run as subprocesses the way the CLI starts them; the agency's 0501 is put
into the shared folder as any other program would, and the archive's answers
are read from it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from queue import Empty, Queue

import pytest

from adapters.xdomea import builders
from adapters.xdomea.files import Verdict, check_file
from tests.acceptance.processes import ROOT, environment, wait_until
from tests.integration.test_archive_sim import PROZESS, _akten
from tests.xdomea_specs import ABSENDER, EMPFAENGER

PASSWORD_ENV = "IKZ_TEST_ARCHIVE_PASSWORD"


class Tool:
    """One ``ikz-gateway dev …`` subprocess and the ``key value`` lines it prints first."""

    def __init__(self, args: list[str], wait_for: str, **env: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "dev", *args],
            cwd=ROOT,
            env=environment(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        lines: Queue[str] = Queue()
        assert self.process.stdout is not None
        stdout = self.process.stdout
        threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
        self.facts: dict[str, str] = {}
        while wait_for not in self.facts:
            try:
                line = lines.get(timeout=30)
            except Empty:
                self.stop()
                raise AssertionError(f"printed no {wait_for} line within 30 s") from None
            key, _, value = line.strip().partition(" ")
            self.facts[key] = value

    def stop(self) -> int:
        """SIGTERM, then the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=20)
        finally:
            if self.process.poll() is None:  # pragma: no cover - only when stuck
                self.process.kill()
                self.process.wait()
            assert self.process.stdout is not None
            self.process.stdout.close()


@pytest.fixture
def dav(tmp_path: Path) -> Iterator[Tool]:
    """``dev webdav-server`` sharing tmp_path/share with both sub-folders."""
    tool = Tool(
        [
            "webdav-server",
            "--root",
            str(tmp_path / "share"),
            "--port",
            "0",
            "--mkdir",
            "to_archive",
            "--mkdir",
            "from_archive",
            "--password-env",
            PASSWORD_ENV,
        ],
        "url",
        **{PASSWORD_ENV: "archiv-geheim"},
    )
    yield tool
    assert tool.stop() == 0


def _offer(share: Path) -> None:
    xml = builders.build_anbieteverzeichnis_0501(
        "3.1.0", _akten(), absender=ABSENDER, empfaenger=EMPFAENGER, prozess_id=PROZESS
    )
    typ = builders.MESSAGE_ELEMENTS["0501"]
    name = f"{PROZESS}_{typ}"
    with zipfile.ZipFile(share / "to_archive" / f"{name}.zip", "w") as archive:
        archive.writestr(f"{name}.xml", xml)


def test_archive_sim_answers_an_offer_through_the_webdav_server(dav: Tool, tmp_path: Path) -> None:
    """webdav-server + archive-sim: a 0501 put into the share is answered with 0504 and 0502."""
    assert dav.facts["url"].startswith("http://127.0.0.1:") and "/dav/archiv/" in dav.facts["url"]
    sim = Tool(
        [
            "archive-sim",
            "--webdav-url",
            dav.facts["url"],
            "--user",
            "gateway",
            "--password-env",
            PASSWORD_ENV,
            "--store",
            str(tmp_path / "archiv"),
            "--settle",
            "0.2",
            "--interval",
            "0.1",
        ],
        "store",
        **{PASSWORD_ENV: "archiv-geheim"},
    )
    try:
        share = tmp_path / "share"
        _offer(share)
        answers = share / "from_archive"
        wait_until(lambda: len(list(answers.iterdir())) == 2, timeout=60, what="0504 and 0502")
    finally:
        assert sim.stop() == 0
    names = sorted(p.name for p in answers.iterdir())
    assert names == [
        f"{PROZESS}_Aussonderung.AnbietungEmpfangBestaetigen.0504.zip",
        f"{PROZESS}_Aussonderung.Bewertungsverzeichnis.0502.zip",
    ]
    assert all(check_file(answers / n).verdict is Verdict.VALID for n in names)
    assert list((share / "to_archive").iterdir()) == []


def test_archive_sim_with_a_wrong_password_stops_with_a_clear_error(
    dav: Tool, tmp_path: Path
) -> None:
    """A refused login ends the simulator with exit 2 and a message, not a stack trace."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "dev",
            "archive-sim",
            "--webdav-url",
            dav.facts["url"],
            "--user",
            "gateway",
            "--password-env",
            PASSWORD_ENV,
            "--store",
            str(tmp_path / "archiv"),
        ],
        cwd=ROOT,
        env=environment(**{PASSWORD_ENV: "falsch"}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "401" in result.stderr and PASSWORD_ENV in result.stderr
    assert "Traceback" not in result.stderr and "falsch" not in result.stderr


def test_webdav_server_without_its_password_variable_exits_with_how_to_set_it(
    tmp_path: Path,
) -> None:
    """No password, no server: the message names the variable."""
    env = environment()
    env.pop(PASSWORD_ENV, None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "dev",
            "webdav-server",
            "--root",
            str(tmp_path),
            "--password-env",
            PASSWORD_ENV,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"{PASSWORD_ENV} with the WebDAV password is not set" in result.stderr
