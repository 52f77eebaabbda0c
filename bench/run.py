"""Benchmarks: ``python -m bench.run [--size tiny|full] [--json PATH]`` (same as ``arrayreg bench``)."""

from arrayreg._bench import main

if __name__ == "__main__":
    main()
