"""`python -m pipeline` runs the newswire CLI."""

import sys

from pipeline.cli import main

sys.exit(main())
