"""A node home: the folder holding one node's configuration, keys and database.

    HOME/seajust.toml   settings an operator may edit (documented in deploy/seajust.sample.toml)
    HOME/keys.json      signing and key-agreement keys + database key, encrypted with the passphrase
    HOME/node.db        the SQLCipher database (documents, peers, tokens, audit log)

Settings are TOML because operators edit them by hand; the file is written once by `init`
from a template, so comments survive, and read with the standard library.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from crypto.card import ROLES
from crypto.keystore import KEYFILE_NAME
from node.countries import COUNTRIES
from node.errors import ConfigError, HomeExists, HomeNotFound
from node.storage import DB_NAME

CONFIG_NAME = "seajust.toml"
REPORTING = ("daily", "weekly", "off")  # how often an authority refreshes its statistics report to the secretariat
DEFAULT_LISTEN = "127.0.0.1:8470"
_LISTEN = re.compile(r"^(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9.\-]+):(?P<port>\d{1,5})$")


@dataclass(frozen=True)
class NodeConfig:
    name: str
    country: str
    role: str
    listen: str
    url: str
    ack_reminder_days: int = 10
    due_soon_days: int = 7
    max_attachment_mb: int = 50
    reporting: str = "daily"
    stats_k: int = 3
    behind_proxy: bool = False
    discovery: bool = False
    relays: tuple[str, ...] = ()
    relay_interval: int = 60
    case_key_days: int = 30
    shred_closed_after_days: int = 0
    log_format: str = "text"
    tls_cert: str = ""
    tls_key: str = ""
    peer_tls: str = "verify"

    @property
    def host(self) -> str:
        return parse_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return parse_listen(self.listen)[1]


def parse_listen(listen: str) -> tuple[str, int]:
    match = _LISTEN.match(listen.strip())
    if not match or not 0 < int(match["port"]) < 65536:
        raise ConfigError(f"listen address must be HOST:PORT, got {listen!r}")
    return match["host"].strip("[]"), int(match["port"])


def url_for_listen(listen: str) -> str:
    host, port = parse_listen(listen)
    if host in ("0.0.0.0", "::"):
        raise ConfigError("listening on all interfaces: give --url, the address peers should use")
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def check_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"peer address must be an http(s) URL, got {url!r}")
    return url.strip().rstrip("/")


def validate(raw: dict[str, Any]) -> NodeConfig:
    node = raw.get("node")
    if not isinstance(node, dict):
        raise ConfigError("configuration has no [node] table")
    name, country, role = node.get("name"), node.get("country"), node.get("role", "authority")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("node.name must be a non-empty string")
    if not isinstance(country, str) or country not in COUNTRIES:
        raise ConfigError(f"node.country must be an ISO 3166 alpha-2 code, got {country!r}")
    if role not in ROLES:
        raise ConfigError(f"node.role must be one of {', '.join(ROLES)}")
    listen = node.get("listen", DEFAULT_LISTEN)
    if not isinstance(listen, str):
        raise ConfigError("node.listen must be HOST:PORT")
    parse_listen(listen)
    url = node.get("url") or url_for_listen(listen)
    if not isinstance(url, str):
        raise ConfigError("node.url must be a URL")
    numbers = {}
    for key, default, most in (
        ("ack_reminder_days", 10, 365),
        ("due_soon_days", 7, 365),
        ("max_attachment_mb", 50, 1024),
    ):
        value = node.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
            raise ConfigError(f"node.{key} must be a whole number from 1 to {most}")
        numbers[key] = value
    reporting = node.get("reporting", "daily")
    if reporting not in REPORTING:
        raise ConfigError(f"node.reporting must be one of {', '.join(REPORTING)}")
    k = node.get("stats_k", 3)
    if not isinstance(k, int) or isinstance(k, bool) or not 2 <= k <= 100:
        raise ConfigError("node.stats_k must be a whole number from 2 to 100")
    behind_proxy, discovery = node.get("behind_proxy", False), node.get("discovery", False)
    if not isinstance(behind_proxy, bool) or not isinstance(discovery, bool):
        raise ConfigError("node.behind_proxy and node.discovery must be true or false")
    relays = node.get("relays", [])
    if not isinstance(relays, list) or not all(isinstance(r, str) for r in relays) or len(relays) > 8:
        raise ConfigError("node.relays must be a list of at most 8 relay URLs")
    interval = node.get("relay_interval", 60)
    if not isinstance(interval, int) or isinstance(interval, bool) or not 1 <= interval <= 86_400:
        raise ConfigError("node.relay_interval must be a whole number of seconds from 1 to 86400")
    for key, default, least, most in (("case_key_days", 30, 0, 3650), ("shred_closed_after_days", 0, 0, 36500)):
        value = node.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= most:
            raise ConfigError(f"node.{key} must be a whole number from {least} to {most}")
        numbers[key] = value
    tls_cert, tls_key, peer_tls = node.get("tls_cert", ""), node.get("tls_key", ""), node.get("peer_tls", "verify")
    if not isinstance(tls_cert, str) or not isinstance(tls_key, str) or bool(tls_cert) != bool(tls_key):
        raise ConfigError("node.tls_cert and node.tls_key must both be given (paths to PEM files), or neither")
    if peer_tls not in ("verify", "encrypt-only"):
        raise ConfigError('node.peer_tls must be "verify" or "encrypt-only"')
    log_format = node.get("log_format", "text")
    if log_format not in ("text", "json"):
        raise ConfigError('node.log_format must be "text" or "json"')
    return NodeConfig(
        name.strip(),
        country,
        str(role),
        listen,
        check_url(url),
        ack_reminder_days=numbers["ack_reminder_days"],
        due_soon_days=numbers["due_soon_days"],
        max_attachment_mb=numbers["max_attachment_mb"],
        reporting=reporting,
        stats_k=k,
        behind_proxy=behind_proxy,
        discovery=discovery,
        relays=tuple(check_url(r) for r in relays),
        relay_interval=interval,
        case_key_days=numbers["case_key_days"],
        shred_closed_after_days=numbers["shred_closed_after_days"],
        log_format=log_format,
        tls_cert=tls_cert,
        tls_key=tls_key,
        peer_tls=peer_tls,
    )


_TEMPLATE = """\
# SEAJust node settings. Every setting is described in deploy/seajust.sample.toml.

[node]
# Display name of this authority, shown to peers on its card.
name = {name}
# ISO 3166-1 alpha-2 country code.
country = {country}
# "authority" (a member's central authority) or "secretariat" (receives aggregate statistics only).
role = {role}
# Where the node listens for its officers (web UI, API) and for peers (sync).
listen = {listen}
# The address peers use to reach this node (printed on its card).
url = {url}
"""


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class NodeHome:
    """The files of one node; knows where things are, not what is in them."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_NAME

    @property
    def keyfile(self) -> Path:
        return self.path / KEYFILE_NAME

    @property
    def database(self) -> Path:
        return self.path / DB_NAME

    def exists(self) -> bool:
        return self.config_path.is_file() and self.keyfile.is_file()

    def require(self) -> None:
        if not self.exists():
            raise HomeNotFound(f"no node home at {self.path}: create one with `seajust init {self.path} ...`")

    def require_new(self) -> None:
        if self.config_path.exists() or self.keyfile.exists():
            raise HomeExists(f"{self.path} already holds a node")

    def create(self, config: NodeConfig) -> None:
        self.require_new()
        self.path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, 0o700)
        text = _TEMPLATE.format(
            name=_toml_string(config.name),
            country=_toml_string(config.country),
            role=_toml_string(config.role),
            listen=_toml_string(config.listen),
            url=_toml_string(config.url),
        )
        self.config_path.write_text(text, encoding="utf-8")

    def load_config(self) -> NodeConfig:
        self.require()
        try:
            raw = tomllib.loads(self.config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{self.config_path}: {exc}") from exc
        return validate(raw)
