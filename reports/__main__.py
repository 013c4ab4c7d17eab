"""python -m reports [ARTEFACT ...] [--results-dir DIR] [--out DIR] [--scale S]: see reports/cli.py."""
import sys

from reports.cli import run

sys.exit(run())
