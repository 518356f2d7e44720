"""The code's shape: layers that point one way (``scripts/check_imports.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_import_points_up_a_layer():
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_imports.py")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "ok: no import points up a layer" in res.stdout


def test_the_checker_catches_an_upward_import(tmp_path, monkeypatch):
    """A quantizer importing the training package is reported (the checker can fail)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import check_imports
    finally:
        sys.path.pop(0)
    pkg = tmp_path / "vqkit"
    for sub in ("quantizers", "training"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "quantizers" / "bad.py").write_text("def f():\n    from vqkit.training import x\n")
    monkeypatch.setattr(check_imports, "SRC", pkg)
    assert check_imports.check(quiet=True) == 1


def test_source_files_stay_under_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "src" / "vqkit").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long
