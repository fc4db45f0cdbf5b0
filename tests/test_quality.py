"""The quality report's and the DANCE sweep's --quick modes run end to end."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SECTION = "<!-- dance_sweep:start -->\nold sweep section\n<!-- dance_sweep:end -->"

# The report generators' quick modes (benchmarks/quality.py, dance_sweep.py: scripts that
# write docs/quality.md, not the library): make test-heavy, with the widest cross-backend
# runs (about 5 minutes of make test's 20 on 2 cores otherwise).
pytestmark = pytest.mark.heavy


def test_quality_quick_mode_writes_a_report(tmp_path):
    out = tmp_path / "quality.md"
    out.write_text("# stale report\n\n" + SECTION + "\n")
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
    assert "stale report" not in text and text.count(SECTION) == 1  # the sweep's part is kept


def test_dance_sweep_quick_mode_rewrites_its_section(tmp_path, monkeypatch):
    out, raw = tmp_path / "quality.md", tmp_path / "sweep.json"
    out.write_text("# Quality report\n\nkept text\n\n" + SECTION + "\n\n## after\n")
    spec = importlib.util.spec_from_file_location("dance_sweep",
                                                  ROOT / "benchmarks" / "dance_sweep.py")
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    monkeypatch.setattr(sys, "argv", ["dance_sweep.py", "--quick", "--tasks=cancer",
                                      f"--out={out}", f"--json={raw}"])
    sweep.main()  # in process: the TensorFlow start-up is shared with the other tests
    text = out.read_text()
    assert text.startswith("# Quality report\n\nkept text") and text.endswith("## after\n")
    assert "old sweep section" not in text and text.count("<!-- dance_sweep:start -->") == 1
    for part in ("## When to use DANCE", "### tabular: breast cancer", "aggregation=patch_range",
                 "base=integrated_gradients", "**Verdict**", "### Saturation probe",
                 "| topk |", "fidelity_input"):
        assert part in text, part
    results = json.loads(raw.read_text())["results"]["cancer"]
    factors = {row["factor"] for row in results["rows"]}
    assert {"centre", "layer", "patch", "stride", "epsilon", "steps", "aggregation",
            "base"} <= factors
    evaluation = results["evaluation"]["results"]
    assert {"base", "centre", "chosen"} <= set(evaluation)
    assert len(evaluation["chosen"]["values"]["deletion"]) == 2  # the evaluation split
    # --render rebuilds the same section from the JSON alone.
    out.write_text("# Quality report\n\n" + SECTION + "\n")
    monkeypatch.setattr(sys, "argv", ["dance_sweep.py", f"--render={raw}", f"--out={out}"])
    sweep.main()
    rendered = out.read_text()
    start, end = "<!-- dance_sweep:start -->", "<!-- dance_sweep:end -->"
    section = text[text.index(start):text.index(end)]
    assert rendered[rendered.index(start):rendered.index(end)] == section
    with pytest.raises(SystemExit):
        monkeypatch.setattr(sys, "argv", ["dance_sweep.py", "--tasks=images"])
        sweep.main()


def test_vit_quality_quick_mode_rewrites_its_section(tmp_path):
    out = tmp_path / "quality.md"
    out.write_text("# Quality report\n\nkept text\n\n<!-- vit_quality:start -->\nold\n"
                   "<!-- vit_quality:end -->\n")
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "vit_quality.py"),
                             "--quick", f"--out={out}"], capture_output=True, text=True,
                            cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    text = out.read_text()
    assert "kept text" in text and "\nold\n" not in text
    for row in ("| attention_gradient |", "| gradcam (token grid, last ln_1) |",
                "| DANCE(gradient) patch embedding: decoys + range |"):
        assert row in text
