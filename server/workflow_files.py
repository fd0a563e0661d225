"""Loads WORKFLOWS_DIR at start: each .yml/.yaml/.json file is a workflow
whose id is the file stem. A broken file is reported and skipped; it never
keeps the server from starting."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from .definitions import DefinitionError, load_workflow_file
from .models import ID_PATTERN
from .store import Store

log = logging.getLogger("rota.workflows")
SUFFIXES = (".yml", ".yaml", ".json")


async def load_directory(store: Store, directory: str | Path) -> list[str]:
    path = Path(directory)
    if not path.is_dir():
        log.info("no workflows directory at %s; none loaded", path)
        return []
    loaded = []
    for file in sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file()):
        wf_id = file.stem
        if not re.fullmatch(ID_PATTERN, wf_id):
            log.error("%s: file name %r is not a valid workflow id; skipped", file, wf_id)
            continue
        try:
            spec = load_workflow_file(file)
        except DefinitionError as exc:
            log.error("%s: invalid workflow, skipped: %s", file, exc)
            continue
        except OSError as exc:
            log.error("%s: cannot read: %s", file, exc)
            continue
        defined = await store.define_workflow(spec, wf_id, kind="file",
                                              document=file.read_text(encoding="utf-8-sig", errors="replace"))
        if defined.outcome == "updated":
            log.info("%s: workflow %s updated (runs in progress keep the definition they started with)",
                     file, wf_id)
        loaded.append(wf_id)
    log.info("loaded %d workflow(s) from %s: %s", len(loaded), path, ", ".join(loaded) or "-")
    return loaded
