"""The wire types: every JSON body the API reads or writes is one of these.

The server, the worker daemon and the CLI all import from here, so a field
changes in one place. Field names follow the workflow-graph protocol (seed
002) so a worker written against that document works unchanged; the
extensions (`name`, `env`, `steps`, `timeout_secs`, `wait_secs`, ...) are
all optional on input.
"""

from __future__ import annotations

import msgspec

from .control import *  # noqa: F401,F403
from .core import *  # noqa: F401,F403
from .protocol import *  # noqa: F401,F403
from .runs import *  # noqa: F401,F403
from .sdk import *  # noqa: F401,F403
from .specs import *  # noqa: F401,F403
from .tokens import *  # noqa: F401,F403
from .views import *  # noqa: F401,F403

encoder = msgspec.json.Encoder()
