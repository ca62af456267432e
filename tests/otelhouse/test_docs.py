"""The README is the user's manual: it must name every setting the code reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from otelhouse.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_readme_documents_setting(name: str) -> None:
    assert f"OTELHOUSE_{name.upper()}" in README
