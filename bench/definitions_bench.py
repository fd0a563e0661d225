"""How long checking a hostile workflow document takes (in-process, no
server): the figures tests/test_definition_checks.py must not time, since a
test may not depend on the machine's speed."""

from __future__ import annotations

import json
import time

from server.definitions import DefinitionError, parse_workflow


def _refusal_secs(doc: dict) -> float:
    body = json.dumps(doc).encode()
    started = time.perf_counter()
    try:
        parse_workflow(body, "application/json")
    except DefinitionError:
        return time.perf_counter() - started
    raise AssertionError("the document was accepted")


def unclosed_openings() -> dict:
    value = "${{ needs.a.outputs.b " * 2900  # just under the 65,536-character limit for a value
    return {"jobs": {"a": {"run": "x"}, "b": {"run": "x", "needs": "a", "env": {"V": value}}}}


def a_flood_of_bad_references(needs: int = 900) -> dict:
    # 40 references a value: as many as the document's bound on expression
    # text (MAX_DOCUMENT_EXPRESSION_CHARS) lets through to be checked
    jobs: dict = {f"pad{n}": {"run": "x"} for n in range(needs)}
    for j in range(40):
        env = {f"V{i}": " ".join(f"${{{{ needs.zz{j}x{i}y{k}.outputs.k }}}}" for k in range(40)) for i in range(4)}
        jobs[f"fan{j}"] = {"run": "x", "needs": [f"pad{n}" for n in range(needs)], "env": env}
    return {"jobs": jobs}


def main() -> None:
    print("  checking hostile documents (refused; best of 3):")
    for what, doc in (("a value of 2,900 unclosed `${{` openings", unclosed_openings()),
                      ("40 jobs x 900 needs, 6,400 unknown references", a_flood_of_bad_references())):
        print(f"    {what}: {min(_refusal_secs(doc) for _ in range(3)) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
