"""`${{ needs.<job>.outputs.<key> }}` in `env:` values, as the worker
resolves them today (worker/daemon/outputs.py) and a submit checks them
(server/definitions/expressions.py): the one definition of both patterns,
here so that the server need not import the worker package to share them."""

from __future__ import annotations

import re

# Job ids may contain dots, so the job part is matched lazily up to the last
# `.outputs.` and the key is a plain identifier as in GitHub Actions.
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.S)
NEEDS_OUTPUT = re.compile(r"^\s*needs\.(?P<job>[A-Za-z0-9_.-]+?)\.outputs\.(?P<key>[A-Za-z0-9_-]+)\s*$")
