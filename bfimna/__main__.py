"""`python -m bfimna ...` runs the `bfimna` command (from the tree, without installing)."""

import sys

from bfimna.cli import main

sys.exit(main())
