"""Example usage:
    python -m edge classify runs/demo/bundle photo.jpg

Entry point for `python -m edge`; see edge/cli.py.
"""

import sys

from edge.cli import main

if __name__ == "__main__":
    sys.exit(main())
