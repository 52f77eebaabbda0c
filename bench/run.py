"""Benchmarks: ``python -m bench.run [--size tiny|full] [--json PATH] [--only W1 ...]`` (same as ``arrayreg bench``)."""

import sys

from arrayreg.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
