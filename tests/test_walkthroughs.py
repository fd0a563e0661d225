"""Every walkthrough in the manual, run as a reader would run it (curl, jq,
`rota`) against a real server process, its answers compared by shape with
the ones the manual shows (tests/walkthroughs.py). A changed answer fails
here instead of leaving the manual wrong."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from tests import walkthroughs
from tests.server_proc import ServerProcess

pytestmark = pytest.mark.slow

ADMIN_TOKEN = "walkthrough-admin-token-0123456789abcdef0123456789"
# How the server is started for each walkthrough (what the page says), and
# what its terminals have exported.
SERVERS: dict[str, dict[str, str]] = {
    "readme-tour": {"WORKFLOWS_DIR": str(walkthroughs.ROOT / "workflows")},  # as `make run`
    "tokens": {"ROTA_ADMIN_TOKEN": ADMIN_TOKEN},
}
FOUND = walkthroughs.collect(walkthroughs.doc_paths())


def test_the_manual_has_its_walkthroughs():
    assert {"protocol", "tour", "readme-tour", "tokens", "sdk"} <= set(FOUND)
    assert set(SERVERS) <= set(FOUND)


def _tools_present() -> None:
    missing = [tool for tool in ("curl", "jq", "bash") if shutil.which(tool) is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"the walkthroughs need {missing} (.ci/run installs them)")
        pytest.skip(f"the walkthroughs need {missing}")


@pytest.mark.timeout(300)  # a busy machine: the run itself is bounded at 240 s
@pytest.mark.parametrize("name", sorted(FOUND))
def test_walkthrough(name, tmp_path: Path):
    _tools_present()
    # What the manual's commands expect around them: a checkout's .venv and workflows/.
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    (tmp_path / "workflows").symlink_to(walkthroughs.ROOT / "workflows")
    with ServerProcess(**SERVERS.get(name, {})) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROTA_")}
        # The page's terminal: the same settings exported (the admin token), rota on PATH.
        env.update(SERVERS.get(name, {}), PATH=f"{Path(sys.prefix) / 'bin'}:{env.get('PATH', '')}",
                   ROTA_SERVER=server.url)
        problems = walkthroughs.run(FOUND[name], server.url, tmp_path, env)
    assert not problems, "\n\n".join(problems)
