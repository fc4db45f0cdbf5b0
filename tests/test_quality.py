"""The quality report's --quick mode runs end to end and writes its report."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quality_quick_mode_writes_a_report(tmp_path):
    out = tmp_path / "quality.md"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "quality.py"), "--quick",
                             f"--out={out}"], capture_output=True, text=True, cwd=ROOT,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    text = out.read_text()
    for heading in ("## What the numbers show", "## 1. Fidelity", "## 2. Sensitivity",
                    "## 3. Sanity checks", "## 4. Localisation", "## 5. SCAAT"):
        assert heading in text
    assert "| integrated_gradients | constant + range |" in text
    assert "| DANCE(gradient) |" in text and "mass_center" in text
    assert "random labels |" in text
    assert not list(tmp_path.glob("*.tmp"))
