"""Settings: the sample file documents exactly what the code reads, and bad values are refused clearly."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from node.config import NodeConfig, validate
from node.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "deploy" / "seajust.sample.toml"


def test_sample_config_is_valid_and_documents_every_setting() -> None:
    raw = tomllib.loads(SAMPLE.read_text())
    config = validate(raw)
    assert config.country == "TH"
    documented = {f"{table}.{key}" for table, values in raw.items() for key in values}
    read_by_code = {f"node.{name}" for name in NodeConfig.__dataclass_fields__}
    assert documented == read_by_code
    text = SAMPLE.read_text()
    for key in NodeConfig.__dataclass_fields__:
        # each setting is preceded by a comment explaining it
        assert re.search(rf"#[^\n]*\n(#[^\n]*\n)*{key} = ", text), key


@pytest.mark.parametrize(
    ("node", "needle"),
    [
        ({"country": "TH"}, "name"),
        ({"name": "x", "country": "Thailand"}, "ISO 3166"),
        ({"name": "x", "country": "TH", "role": "observer"}, "role"),
        ({"name": "x", "country": "TH", "listen": "8470"}, "HOST:PORT"),
        ({"name": "x", "country": "TH", "url": "seajust.example.org"}, "URL"),
    ],
)
def test_invalid_settings(node: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        validate({"node": node})


def test_missing_table() -> None:
    with pytest.raises(ConfigError, match=r"\[node\]"):
        validate({})
