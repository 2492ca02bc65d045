"""Where the committed test inputs live, named once (test modules sit at different depths under tests/)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository
DIGITS = ROOT / "tests" / "data" / "digits"  # the trained digits reference (see its README.md)
SAMPLE_PHOTOS = ROOT / "calibration" / "samples"  # the committed sample photographs (calibration/samples)
