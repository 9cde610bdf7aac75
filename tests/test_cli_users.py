"""`seajust user ...`: web UI accounts managed from the node's terminal, with one clear line for every user error."""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path

import pytest
from nodeproc import init_node, node_env, run_in_terminal

from node.accounts import Accounts, LoginRefused
from node.cli import main
from node.runtime import open_node

PASSWORD = "tamarind-monsoon-42"
NODE_PASSPHRASE = node_env()["SEAJUST_PASSPHRASE"]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return init_node(tmp_path, "Thailand OAG", "TH").home


def seajust(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("seajust: error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]


def can_log_in(home: Path, name: str, password: str) -> bool:
    node = open_node(home, NODE_PASSPHRASE)
    try:
        Accounts(node.db).authenticate(name, password, client="test")
        return True
    except LoginRefused:
        return False
    finally:
        node.close()


def test_add_list_disable_enable_reset(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEAJUST_USER_PASSWORD", PASSWORD)
    assert seajust(capsys, "user", "list", str(home)) == (
        0,
        "no users yet: add one with `seajust user add HOME NAME --role admin`\n",
        "",
    )
    assert seajust(capsys, "user", "add", str(home), "Somchai", "--role", "admin") == (
        0,
        "user somchai added (admin)\n",
        "",
    )
    assert seajust(capsys, "user", "add", str(home), "lan")[1] == "user lan added (officer)\n"
    assert can_log_in(home, "somchai", PASSWORD)

    code, out, _ = seajust(capsys, "user", "list", str(home))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["lan", "officer", "enabled"] and lines[0].endswith("last login: never")
    assert lines[1].split()[:3] == ["somchai", "admin", "enabled"] and "last login: 20" in lines[1]

    code, out, _ = seajust(capsys, "user", "list", str(home), "--json")
    listed = json.loads(out)
    assert [(u["username"], u["role"], u["disabled"], u["last_login"]) for u in listed] == [
        ("lan", "officer", False, None),
        ("somchai", "admin", False, listed[1]["last_login"]),
    ]
    assert set(listed[0]) == {"username", "role", "disabled", "created_at", "last_login", "full_name", "email"}

    assert seajust(capsys, "user", "disable", str(home), "lan")[:2] == (
        0,
        "user lan disabled; their sessions have ended\n",
    )
    assert json.loads(seajust(capsys, "user", "list", str(home), "--json")[1])[0]["disabled"] is True
    assert "disabled" in seajust(capsys, "user", "list", str(home))[1].splitlines()[0]
    assert not can_log_in(home, "lan", PASSWORD)
    assert seajust(capsys, "user", "enable", str(home), "lan")[:2] == (0, "user lan enabled\n")
    assert can_log_in(home, "lan", PASSWORD)

    node = open_node(home, NODE_PASSPHRASE)
    try:
        session_id, _ = Accounts(node.db).start_session("lan")
    finally:
        node.close()
    monkeypatch.setenv("SEAJUST_USER_PASSWORD", "the replacement password")
    assert seajust(capsys, "user", "reset", str(home), "lan")[:2] == (
        0,
        "password of lan reset; their sessions have ended\n",
    )
    assert not can_log_in(home, "lan", PASSWORD)
    assert can_log_in(home, "lan", "the replacement password")
    node = open_node(home, NODE_PASSPHRASE)
    try:
        assert Accounts(node.db).session(session_id) is None
        audit = [r["action"] for r in node.db.query("SELECT action FROM audit_log WHERE actor = 'cli'")]
        dump = "\n".join(node.db.dump_sql())
    finally:
        node.close()
    assert audit.count("user.add") == 2 and {"user.disable", "user.enable", "user.password"} <= set(audit)
    assert PASSWORD not in dump and "the replacement password" not in dump


def fake_terminal(monkeypatch: pytest.MonkeyPatch, answers: list[str]) -> list[str]:
    """Typed answers to getpass prompts at a (pretend) terminal; returns the prompts shown."""
    prompts: list[str] = []

    def fake_getpass(prompt: str = "Password: ", stream: object = None) -> str:
        prompts.append(prompt)
        return answers[len(prompts) - 1]

    monkeypatch.delenv("SEAJUST_USER_PASSWORD", raising=False)
    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    return prompts


def test_the_password_is_asked_for_twice(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts = fake_terminal(monkeypatch, [PASSWORD, PASSWORD])
    assert seajust(capsys, "user", "add", str(home), "somchai", "--role", "admin")[0] == 0
    assert prompts == ["Password for somchai: ", "Repeat password: "]
    assert can_log_in(home, "somchai", PASSWORD)


def test_passwords_that_differ_add_nobody(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_terminal(monkeypatch, [PASSWORD, PASSWORD + "x"])
    code, out, err = seajust(capsys, "user", "add", str(home), "somchai")
    assert code == 1 and out == ""
    one_error_line(err, "differ")
    assert PASSWORD not in err
    assert seajust(capsys, "user", "list", str(home))[1].startswith("no users yet")


def test_no_password_and_no_terminal(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEAJUST_USER_PASSWORD", raising=False)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    code, _, err = seajust(capsys, "user", "add", str(home), "somchai")
    assert code == 1
    one_error_line(err, "SEAJUST_USER_PASSWORD")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("add", "{home}", "somchai", "--role", "root"), ("role", "officer or admin")),
        (("add", "{home}", "Som Chai"), ("username",)),
        (("add", "{home}", "lan", "--role", "officer"), ("already taken",)),
        (("disable", "{home}", "ghost"), ("no such user: ghost",)),
        (("enable", "{home}", "ghost"), ("no such user: ghost",)),
        (("reset", "{home}", "ghost"), ("no such user: ghost",)),
        (("disable", "{home}", "somchai"), ("last enabled admin",)),
        (("list", "{home}/../nowhere"), ("no node home",)),
    ],
)
def test_user_errors_are_one_line(
    home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    needles: tuple[str, ...],
) -> None:
    monkeypatch.setenv("SEAJUST_USER_PASSWORD", PASSWORD)
    assert seajust(capsys, "user", "add", str(home), "somchai", "--role", "admin")[0] == 0
    assert seajust(capsys, "user", "add", str(home), "lan")[0] == 0
    code, out, err = seajust(capsys, "user", *(a.format(home=home) for a in args))
    assert code == 1 and out == ""
    one_error_line(err, *needles)


def test_a_short_password_is_refused(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEAJUST_USER_PASSWORD", "too short")
    code, _, err = seajust(capsys, "user", "add", str(home), "somchai")
    assert code == 1
    one_error_line(err, "password", "at least 12 characters")
    assert "too short" not in err


def test_a_bad_role_is_refused_before_the_prompt(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts = fake_terminal(monkeypatch, [PASSWORD, PASSWORD])
    code, _, err = seajust(capsys, "user", "add", str(home), "somchai", "--role", "root")
    assert code == 1 and prompts == []
    one_error_line(err, "role")
    code, _, err = seajust(capsys, "user", "reset", str(home), "ghost")
    assert code == 1 and prompts == []


def test_prompts_at_a_real_terminal(home: Path) -> None:
    """Through a pseudo-terminal: the passphrase comes from the environment, the user password is typed unseen."""

    def in_terminal(args: list[str], answers: list[str]) -> tuple[int, str]:
        return run_in_terminal(args, answers, prompt=b"assword", unset="SEAJUST_USER_PASSWORD")

    code, out = in_terminal(["user", "add", str(home), "somchai", "--role", "admin"], [PASSWORD, PASSWORD])
    assert code == 0, out
    assert "Password for somchai:" in out and "Repeat password:" in out and "user somchai added (admin)" in out
    assert PASSWORD not in out
    code, out = in_terminal(["user", "reset", str(home), "somchai"], ["one long password", "another long one"])
    assert code == 1 and "seajust: error: the two passwords differ" in out
    assert can_log_in(home, "somchai", PASSWORD)
