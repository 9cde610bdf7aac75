"""The coverage-guided fuzz targets (tests/fuzz_atheris.py) run briefly here, longer in `make soak` and for
minutes in `make fuzz`: a parser that raises anything but its own error on some input fails the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HARNESS = Path(__file__).with_name("fuzz_atheris.py")
TARGETS = ["messages", "envelopes", "grants", "relay_frames"]
ROOT = HARNESS.parent.parent


def fuzz(tmp_path: Path, script: Path, target: str, *options: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [
            sys.executable,
            str(script),
            target,
            str(tmp_path / "corpus"),
            "-seed=7",
            f"-artifact_prefix={tmp_path}/",  # where libFuzzer writes an input that broke a contract
            *options,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )


@pytest.mark.parametrize("target", TARGETS)
def test_the_parsers_keep_their_contract_for_any_bytes(tmp_path: Path, target: str) -> None:
    result = fuzz(tmp_path, HARNESS, target, "-runs=30000")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done 30000 runs" in result.stderr
    assert any((tmp_path / "corpus").iterdir())  # the seeds it started from


def test_a_broken_contract_stops_the_fuzzer(tmp_path: Path) -> None:
    """The same runner on a target with a planted bug: libFuzzer must find it and fail, or the runs above prove
    nothing."""
    planted = tmp_path / "planted.py"
    planted.write_text(
        "import sys, atheris\n"
        "@atheris.instrument_func\n"
        "def target(data: bytes) -> None:\n"
        "    if data[:2] == b'{}' and len(data) > 2 and data[2] == 0x5d:\n"
        "        raise KeyError('a parser raised what it must not')\n"
        "atheris.Setup([sys.argv[0], *sys.argv[3:], sys.argv[2]], target)\n"
        "atheris.Fuzz()\n"
    )
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "seed").write_bytes(b"{}")
    result = fuzz(tmp_path, planted, "planted", "-runs=200000")
    assert result.returncode != 0
    assert "KeyError: 'a parser raised what it must not'" in result.stdout
    assert list(tmp_path.glob("crash-*"))  # the input, kept to reproduce it


@pytest.mark.soak
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("target", TARGETS)
def test_the_parsers_keep_their_contract_soak(tmp_path: Path, target: str) -> None:
    result = fuzz(tmp_path, HARNESS, target, "-max_total_time=300")
    assert result.returncode == 0, result.stderr[-3000:]
