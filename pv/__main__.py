"""``python -m pv``: the ``pv`` command line."""

from pv.cli import main

if __name__ == "__main__":
    main()
