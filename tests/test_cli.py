"""The `seajust` command: happy paths, and one clear line plus a non-zero exit for every user error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from nodeproc import PASSPHRASE, node_env, run_in_terminal

from node.cli import main


def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node.cli", *args],
        env=env or node_env(),
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
    )


def assert_clean_error(result: subprocess.CompletedProcess[str], *needles: str, logs: bool = False) -> None:
    """One error line (after the log lines of `run`, if any), no traceback, non-zero exit."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if logs:
        lines = [line for line in lines if " INFO " not in line]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("seajust: error: ")
    for needle in needles:
        assert needle in lines[0]


def test_init_card_peer_token_dump(tmp_path: Path) -> None:
    th, vn = tmp_path / "th", tmp_path / "vn"
    init = run("init", str(th), "--name", "Thailand OAG", "--country", "th", "--listen", "127.0.0.1:18555")
    assert init.returncode == 0, init.stderr
    node_id = init.stdout.strip()
    assert len(node_id) == 21 and node_id.count("-") == 4
    assert run("init", str(vn), "--name", "Viet Nam SPP", "--country", "VN").returncode == 0

    card = run("card", str(th)).stdout.strip()
    assert card.startswith("SJCARD1.") and "\n" not in card
    added = run("peer", "add", str(vn), card)
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == node_id
    # Re-adding the same card is harmless; a card read from stdin works too.
    assert run("peer", "add", str(vn), "-", stdin=card + "\n").stdout.strip() == node_id

    listing = run("peer", "list", str(vn)).stdout
    assert node_id in listing and "Thailand OAG" in listing and "TH" in listing
    assert "no trusted peers" in run("peer", "list", str(th)).stdout

    token = run("token", "create", str(th)).stdout.strip()
    assert token.startswith("sjt_") and len(token) > 40
    dump = run("dump", str(vn))
    assert dump.returncode == 0
    assert "CREATE TABLE" in dump.stdout and node_id in dump.stdout
    assert token not in run("dump", str(th)).stdout  # only its hash is stored
    config = (th / "seajust.toml").read_text()
    assert 'url = "http://127.0.0.1:18555"' in config and 'country = "TH"' in config


def test_database_and_keys_are_unreadable_without_the_passphrase(tmp_path: Path) -> None:
    home = tmp_path / "th"
    assert run("init", str(home), "--name", "Thailand OAG", "--country", "TH").returncode == 0
    raw = (home / "node.db").read_bytes()
    assert not raw.startswith(b"SQLite format 3")
    assert b"CREATE TABLE" not in raw and b"doc_log" not in raw
    keys = (home / "keys.json").read_text()
    assert "Thailand" not in keys
    assert (home / "keys.json").stat().st_mode & 0o077 == 0


def test_wrong_passphrase(tmp_path: Path) -> None:
    home = tmp_path / "th"
    assert run("init", str(home), "--name", "T", "--country", "TH").returncode == 0
    env = node_env() | {"SEAJUST_PASSPHRASE": "not the passphrase"}
    for args in (("card", str(home)), ("dump", str(home)), ("run", str(home)), ("peer", "list", str(home))):
        assert_clean_error(run(*args, env=env), "passphrase")


def test_passphrase_file_and_missing_passphrase(tmp_path: Path) -> None:
    home = tmp_path / "th"
    secret = tmp_path / "pass.txt"
    secret.write_text(PASSPHRASE + "\n")
    env = {k: v for k, v in node_env().items() if k != "SEAJUST_PASSPHRASE"}
    result = run("init", str(home), "--name", "T", "--country", "TH", "--passphrase-file", str(secret), env=env)
    assert result.returncode == 0, result.stderr
    assert run("card", str(home), "--passphrase-file", str(secret), env=env).returncode == 0
    assert_clean_error(run("card", str(home), env=env, stdin=""), "SEAJUST_PASSPHRASE")
    assert_clean_error(run("card", str(home), "--passphrase-file", str(tmp_path / "nope"), env=env), "nope")


def test_bad_card(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    run("init", str(a), "--name", "A", "--country", "TH")
    run("init", str(b), "--name", "B", "--country", "VN")
    card = run("card", str(b)).stdout.strip()
    payload, signature = card[len("SJCARD1.") :].split(".")
    flipped = "SJCARD1." + payload[:-3] + ("A" if payload[-3] != "A" else "B") + payload[-2:] + "." + signature
    for bad, needle in (("not a card", "card"), (flipped, "card"), (run("card", str(a)).stdout.strip(), "own card")):
        assert_clean_error(run("peer", "add", str(a), bad), needle)
    assert "no trusted peers" in run("peer", "list", str(a)).stdout


def test_missing_home_and_existing_home(tmp_path: Path) -> None:
    for args in (("card",), ("run",), ("dump",), ("token", "create"), ("peer", "list")):
        assert_clean_error(run(*args, str(tmp_path / "nowhere")), "no node home")
    home = tmp_path / "th"
    assert run("init", str(home), "--name", "T", "--country", "TH").returncode == 0
    before = (home / "keys.json").read_bytes()
    assert_clean_error(run("init", str(home), "--name", "Other", "--country", "VN"), "already")
    assert (home / "keys.json").read_bytes() == before


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--country", "XX"), "ISO 3166"),
        (("--country", "TH", "--listen", "localhost"), "HOST:PORT"),
        (("--country", "TH", "--listen", "127.0.0.1:99999"), "HOST:PORT"),
        (("--country", "TH", "--url", "ftp://x"), "URL"),
        (("--country", "TH", "--listen", "0.0.0.0:8470"), "--url"),
    ],
)
def test_init_rejects_bad_settings(tmp_path: Path, args: tuple[str, ...], needle: str) -> None:
    home = tmp_path / "th"
    assert_clean_error(run("init", str(home), "--name", "T", *args), needle)
    assert not (home / "keys.json").exists()


def test_run_reports_a_busy_port(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        home = tmp_path / "th"
        run("init", str(home), "--name", "T", "--country", "TH", "--listen", f"127.0.0.1:{port}")
        assert_clean_error(run("run", str(home)), "cannot listen", "in use", logs=True)


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["init"])
    assert exc.value.code == 2
    assert "usage" in capsys.readouterr().err


def _run_in_terminal(args: list[str], answers: list[str]) -> tuple[int, str]:
    return run_in_terminal(args, answers, prompt=b"passphrase: ", unset="SEAJUST_PASSPHRASE")


def test_passphrase_prompt_at_a_terminal(tmp_path: Path) -> None:
    home = str(tmp_path / "th")
    code, out = _run_in_terminal(["init", home, "--name", "T", "--country", "TH"], ["typed secret", "typed secret"])
    assert code == 0, out
    assert "Node passphrase:" in out and "Repeat passphrase:" in out
    assert "typed secret" not in out  # not echoed
    code, out = _run_in_terminal(["card", home], ["typed secret"])
    assert code == 0 and "SJCARD1." in out
    code, out = _run_in_terminal(["card", home], ["wrong"])
    assert code == 1 and "passphrase does not open" in out
    code, out = _run_in_terminal(["init", str(tmp_path / "vn"), "--name", "V", "--country", "VN"], ["one", "two"])
    assert code == 1 and "differ" in out
    assert not (tmp_path / "vn" / "keys.json").exists()
