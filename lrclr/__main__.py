"""``python -m lrclr <command>``: the library's command line (``predict``)."""

from lrclr.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
