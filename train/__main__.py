"""``python -m train <command> ...``: one sub-command per module in this package."""

from train.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
