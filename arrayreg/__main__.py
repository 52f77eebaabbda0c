"""``python -m arrayreg`` is the ``arrayreg`` command."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
