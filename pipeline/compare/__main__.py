"""``python -m pipeline.compare``: print the last comparison (what ``make run`` ends with)."""

from pipeline.paths import REPORTS_DIR

summary = REPORTS_DIR / "summary.txt"
print(summary.read_text() if summary.is_file() else "no comparison yet: run `dvc repro` (or `make run`)")
print(f"Full report: {REPORTS_DIR / 'comparison.md'}")
