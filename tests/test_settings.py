"""Configuration comes only from declared environment variables, documented in the README."""

from __future__ import annotations

import pathlib
import re

import pytest

from socialgan import settings

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_variable_the_code_reads_is_declared():
    code = "\n".join(p.read_text() for p in [*ROOT.glob("src/socialgan/**/*.py"),
                                             *ROOT.glob("services/**/*.py")])
    read = set(re.findall(r'settings\.(?:get|require|get_int|get_bool)\(\s*"([A-Z0-9_]+)"', code))
    assert read, "found no settings reads"
    assert read <= set(settings.ENV_VARS), read - set(settings.ENV_VARS)
    # Only the registry itself reads single variables from the environment.
    assert code.count("os.environ.get(") == 1


def test_readme_documents_every_variable():
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in settings.ENV_VARS if f"`{name}`" not in readme]
    assert not missing, f"README's configuration table lacks {missing}: paste `socialgan env`"


def test_bad_values_are_clear_errors(monkeypatch):
    monkeypatch.setenv("S3_SECURE", "maybe")
    with pytest.raises(settings.ConfigError, match="S3_SECURE"):
        settings.get_bool("S3_SECURE")
    monkeypatch.setenv("PORT", "eighty")
    with pytest.raises(settings.ConfigError, match="PORT"):
        settings.get_int("PORT", 1)
    monkeypatch.delenv("SOCIALGAN_API_TOKEN")
    with pytest.raises(settings.ConfigError, match="SOCIALGAN_API_TOKEN"):
        settings.require("SOCIALGAN_API_TOKEN")
