"""`python -m worker [flags]`: the same as `rota worker [flags]`."""

import sys

from worker.cli.main import main

sys.exit(main(["worker", *sys.argv[1:]]))
