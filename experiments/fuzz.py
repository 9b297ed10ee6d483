"""Run the property-based tests with a large budget and print the counts.

The properties live in tests/test_properties.py (random shapes, scales,
offsets, duplicated rows, integer weights, keys, all four families). This
runs each with the "fuzz" Hypothesis profile (1,000 examples per property
unless --examples says otherwise) and prints Hypothesis's statistics: how many
examples passed, failed or were invalid, and the time they took.

    python experiments/fuzz.py [--examples 1000]
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def main():
    parser = argparse.ArgumentParser(description="Property-based tests with a large budget.")
    parser.add_argument("--examples", type=int, default=1000, help="examples per property (default 1000)")
    args = parser.parse_args()
    command = [
        sys.executable, "-m", "pytest", "tests/test_properties.py", "-q", "-p", "no:cacheprovider",
        "--hypothesis-profile=fuzz", "--hypothesis-show-statistics", "--hypothesis-seed=0",
    ]
    result = subprocess.run(command, cwd=ROOT, env={**os.environ, "JGMM_FUZZ_EXAMPLES": str(args.examples)})
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
