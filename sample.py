"""Generate audio from text: `python sample.py --prompt "..."` (see `audiodit/cli.py`)."""

import sys

from audiodit.cli import main

if __name__ == "__main__":
    sys.exit(main())
