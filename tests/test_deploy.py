"""The deployment files: the smoke script runs a whole network from the installed command, the container's entry
script initialises and runs a node (and a relay) from its environment, and the image, compose file and systemd units
keep their security properties."""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from nodeproc import PASSPHRASE, free_port, wait_until

from node.runtime import open_node

pytestmark = pytest.mark.processes

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
ENTRYPOINT = DEPLOY / "entrypoint.sh"
UNITS = ("seajust.service", "seajust-relay.service")
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "LockPersonality": "yes",
    "CapabilityBoundingSet": "",
    "SystemCallFilter": "@system-service",
    "UMask": "0077",
    "Restart": "on-failure",
    "TimeoutStopSec": "30",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "MemoryDenyWriteExecute": "yes",
}


@pytest.fixture
def seajust(tmp_path: Path) -> str:
    """The installed `seajust` console script of this environment, or a wrapper running this Python's node.cli."""
    script = Path(sys.executable).parent / "seajust"
    if script.is_file() and os.access(script, os.X_OK):
        return str(script)
    wrapper = tmp_path / "bin" / "seajust"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m node.cli "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAJUST")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def healthy(url: str) -> bool:
    with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:
        return bool(resp.status == 200)


def unit_settings(path: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


# --- (a) the smoke script --------------------------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_smoke_script_runs_the_network_from_the_installed_command(seajust: str) -> None:
    result = subprocess.run(
        ["bash", str(DEPLOY / "smoke.sh")],
        env=clean_env(SEAJUST=seajust, PYTHON=sys.executable, SMOKE_TIMEOUT="60", SEAJUST_PASSPHRASE=PASSPHRASE),
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert result.stdout.rstrip().endswith("smoke: ok")
    assert PASSPHRASE not in result.stdout + result.stderr


def test_smoke_script_names_the_failed_step() -> None:
    result = subprocess.run(
        ["bash", str(DEPLOY / "smoke.sh")],
        env=clean_env(SEAJUST="/nonexistent/seajust", PYTHON=sys.executable),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "smoke: FAILED at step: checking the seajust command" in result.stderr


# --- (b) the container's entry script --------------------------------------------------------------------------


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secrets" / "seajust_passphrase"
    path.parent.mkdir()
    path.write_text(PASSPHRASE + "\n")
    path.chmod(0o400)
    return path


class Entrypoint:
    def __init__(self, tmp_path: Path, seajust: str, secret: Path) -> None:
        self.tmp_path, self.seajust, self.secret = tmp_path, seajust, secret
        self.data = tmp_path / "data"
        self.procs: list[subprocess.Popen[bytes]] = []

    def env(self, **extra: str) -> dict[str, str]:
        paths = {"SEAJUST": self.seajust, "SEAJUST_DATA": str(self.data), "SEAJUST_PASSPHRASE_FILE": str(self.secret)}
        return clean_env(**{**paths, **extra})

    def start(self, *args: str, **extra: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.tmp_path / f"entrypoint-{len(self.procs)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(["sh", str(ENTRYPOINT), *args], env=self.env(**extra), stdout=out, stderr=out)
        self.procs.append(proc)
        return proc, log

    def run(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", str(ENTRYPOINT), *args], env=self.env(**extra), capture_output=True, text=True, timeout=60
        )

    def stop(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        """SIGTERM reaches seajust itself (the script execs it), which stops with status 0."""
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log.read_text(errors="replace")


@pytest.fixture
def entry(tmp_path: Path, seajust: str, secret: Path) -> Iterator[Entrypoint]:
    runner = Entrypoint(tmp_path, seajust, secret)
    yield runner
    for proc in runner.procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def relays_lines(config: Path) -> list[str]:
    return [line for line in config.read_text().splitlines() if re.match(r"\s*relays\s*=", line)]


def test_entrypoint_initialises_a_fresh_volume_runs_the_node_and_stops_on_sigterm(entry: Entrypoint) -> None:
    port = free_port()
    relay, other = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    first = {
        "SEAJUST_LISTEN": f"127.0.0.1:{port}",
        "SEAJUST_NAME": "Thailand - Office of the Attorney General",
        "SEAJUST_COUNTRY": "th",
        "SEAJUST_ROLE": "authority",
        "SEAJUST_URL": f"http://127.0.0.1:{port}",
        "SEAJUST_RELAYS": f"{relay}, {other}",
    }
    proc, log = entry.start(**first)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: proc.poll() is None and healthy(url), timeout=30, what="the node started by the entry script")
    home = entry.data / "node"
    assert (home / "keys.json").is_file() and (home / "node.db").is_file()
    config = home / "seajust.toml"
    assert relays_lines(config) == [f'relays = ["{relay}", "{other}"]']
    settings = tomllib.loads(config.read_text())["node"]
    assert settings["country"] == "TH" and settings["listen"] == f"127.0.0.1:{port}"
    entry.stop(proc, log)
    output = log.read_text()
    assert PASSPHRASE not in output
    opened = open_node(home, PASSPHRASE)  # the node was created with the secret file's passphrase
    try:
        node_id = opened.node_id
    finally:
        opened.close()
    assert node_id in output

    # A second start keeps the node and the relays the file already names, whatever the variables say now.
    proc, log = entry.start(**{**first, "SEAJUST_NAME": "Someone else", "SEAJUST_RELAYS": "http://elsewhere:9500"})
    wait_until(lambda: proc.poll() is None and healthy(url), timeout=30, what="the node started again")
    assert relays_lines(config) == [f'relays = ["{relay}", "{other}"]']
    assert "creating the node" not in log.read_text()
    entry.stop(proc, log)
    assert tomllib.loads(config.read_text())["node"]["name"] == "Thailand - Office of the Attorney General"


def test_entrypoint_runs_a_relay(entry: Entrypoint) -> None:
    port = free_port()
    proc, log = entry.start("relay", SEAJUST_RELAY_HOST="127.0.0.1", SEAJUST_RELAY_PORT=str(port))
    wait_until(lambda: proc.poll() is None and healthy(f"http://127.0.0.1:{port}"), timeout=30, what="the relay")
    assert (entry.data / "relay" / "relay.db").is_file()
    entry.stop(proc, log)


def test_entrypoint_says_what_is_missing(entry: Entrypoint, secret: Path) -> None:
    result = entry.run()
    assert result.returncode != 0
    assert "set SEAJUST_NAME and SEAJUST_COUNTRY" in result.stderr
    assert not (entry.data / "node").exists()

    result = entry.run(SEAJUST_PASSPHRASE_FILE=str(secret.parent / "absent"), SEAJUST_NAME="X", SEAJUST_COUNTRY="TH")
    assert result.returncode != 0
    assert "no passphrase file at" in result.stderr

    listen = f"127.0.0.1:{free_port()}"
    bad = entry.run(SEAJUST_NAME="X", SEAJUST_COUNTRY="TH", SEAJUST_LISTEN=listen, SEAJUST_RELAYS='http://a"b')
    assert bad.returncode != 0
    assert "SEAJUST_RELAYS" in bad.stderr
    assert relays_lines(entry.data / "node" / "seajust.toml") == []
    assert PASSPHRASE not in bad.stdout + bad.stderr


# --- (c) the image, compose file and units keep their properties ------------------------------------------------


def test_dockerfile_runs_unprivileged_with_a_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    froms = [line for line in lines if line.startswith("FROM ")]
    assert froms and all(line.split()[1] == "python:3.11-slim" for line in froms)
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert int(users[-1].split(":")[0]) >= 1000
    assert "EXPOSE 8470" in lines and "STOPSIGNAL SIGTERM" in lines
    assert any(line.startswith("VOLUME") and "/data" in line for line in lines)
    health = next(line for line in lines if line.startswith("HEALTHCHECK"))
    assert "CMD" in text.split("HEALTHCHECK", 1)[1] and "urllib" in text and "curl" not in health
    assert "SEAJUST_HEALTHCHECK_URL=http://127.0.0.1:8470/healthz" in text
    assert "SEAJUST_PASSPHRASE_FILE=/run/secrets/seajust_passphrase" in text
    assert any(line.startswith("ENTRYPOINT") and "seajust-entrypoint" in line for line in lines)
    # What the image copies from the build context is not excluded by its ignore file.
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    for line in lines:
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert f"!{source.rstrip('/')}" in {entry.rstrip("/") for entry in ignore}, source


def test_entry_script_is_posix_and_never_shows_the_passphrase() -> None:
    text = ENTRYPOINT.read_text()
    assert text.startswith("#!/bin/sh\n") and "\nset -eu\n" in text
    assert ENTRYPOINT.stat().st_mode & stat.S_IXUSR
    assert 'exec "$SEAJUST" run "$HOME_DIR" --passphrase-file "$PASSFILE"' in text
    assert 'exec "$SEAJUST" relay "$DATA/relay" --host' in text
    assert 'cat "$PASSFILE"' not in text and "SEAJUST_PASSPHRASE=" not in text
    assert "SEAJUST_DATA:-/data}" in text and "SEAJUST_LISTEN:-0.0.0.0:8470}" in text
    assert "SEAJUST_PASSPHRASE_FILE:-/run/secrets/seajust_passphrase}" in text
    smoke = (DEPLOY / "smoke.sh").read_text()
    assert smoke.startswith("#!/usr/bin/env bash\n") and "\nset -euo pipefail\n" in smoke
    if shutil.which("shellcheck"):
        for script, shell in ((ENTRYPOINT, "sh"), (DEPLOY / "smoke.sh", "bash")):
            result = subprocess.run(["shellcheck", "-s", shell, str(script)], capture_output=True, text=True)
            assert result.returncode == 0, result.stdout


def test_settings_written_by_the_entry_script_are_documented() -> None:
    sample = tomllib.loads((DEPLOY / "seajust.sample.toml").read_text())["node"]
    for key in ("name", "country", "role", "listen", "url", "relays"):
        assert key in sample, key
    assert sample["relays"] == []


def test_compose_publishes_on_loopback_only_and_gives_each_node_its_secret() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    for service in ("relay", "thailand", "vietnam", "secretariat"):
        assert re.search(rf"^  {service}:$", text, re.MULTILINE), service
        assert re.search(rf"^  {service}-data:$", text, re.MULTILINE), service
    for service in ("thailand", "vietnam", "secretariat"):
        assert re.search(rf"^  {service}_passphrase:\n    file: ", text, re.MULTILINE), service
        assert f"source: {service}_passphrase\n        target: seajust_passphrase" in text
    assert text.count("SEAJUST_RELAYS: http://relay:9500") == 3
    ports = re.findall(r'"([0-9.:]+:\d+)"', text)
    assert ports and all(port.startswith("127.0.0.1:") for port in ports)
    assert "SEAJUST_ROLE: secretariat" in text and 'command: ["relay"]' in text


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_units_are_hardened(unit: str) -> None:
    settings = unit_settings(DEPLOY / unit)
    for key, value in HARDENING.items():
        assert value in settings.get(key, []), f"{unit}: {key}={value}"
    exec_start = settings["ExecStart"][0]
    assert exec_start.startswith("/opt/seajust/bin/seajust ")
    if unit == "seajust.service":
        assert settings["User"] == ["seajust"]
        assert settings["LoadCredential"] == ["passphrase:/etc/seajust/passphrase"]
        assert exec_start.endswith("run /var/lib/seajust/node --passphrase-file ${CREDENTIALS_DIRECTORY}/passphrase")
    else:
        assert settings["DynamicUser"] == ["yes"] and "passphrase" not in exec_start


# --- (d) systemd's own check ------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_units(tmp_path: Path, seajust: str) -> None:
    for unit in UNITS:  # the units name /opt/seajust; point them at this environment's command
        text = (DEPLOY / unit).read_text().replace("/opt/seajust/bin/seajust", seajust)
        (tmp_path / unit).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", *UNITS], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    problems = [line for line in result.stderr.splitlines() if re.search(r"Unknown|ignoring|[Ii]nvalid", line)]
    assert problems == []
