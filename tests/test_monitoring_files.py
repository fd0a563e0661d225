"""The monitoring examples in docs/monitoring/ (a Grafana dashboard and
Prometheus alert rules) against the series /metrics exports: a panel or a
rule that names a series rota does not export draws nothing and never fires,
and nobody notices until the outage it was for.

The names are the contract written for /metrics (SERIES below). promtool,
when installed (Debian's `prometheus` package; `.ci/run` installs it),
checks the rules' syntax, the dashboard's PromQL, and runs
docs/monitoring/alerts_test.yml, which proves each alert fires on a
synthetic series and stays quiet otherwise. Outside CI a missing promtool
skips those tests; in CI (CI=true) it fails them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "docs" / "monitoring"
DASHBOARD = MONITORING / "grafana-dashboard.json"
ALERTS = MONITORING / "alerts.yml"
ALERTS_TEST = MONITORING / "alerts_test.yml"

# Every rota_* series /metrics exports, with its labels: the contract the
# dashboard and the rules are written against.
SERIES: dict[str, set[str]] = {
    "rota_queue_ready_jobs": {"labels"},
    "rota_queue_oldest_ready_age_seconds": {"labels"},
    "rota_queue_paused": {"labels"},
    "rota_queue_live_workers": {"labels"},
    "rota_queue_free_slots": {"labels"},
    "rota_jobs": {"state", "labels"},
    "rota_runs": {"status"},
    "rota_workers": {"status"},
    "rota_worker_free_slots": set(),
    "rota_dead_letters": set(),
    "rota_sse_streams_open": set(),
    "rota_claims_total": set(),
    "rota_completions_total": set(),
    "rota_failures_total": {"reason"},
    "rota_retries_total": set(),
    "rota_dead_letters_total": set(),
    "rota_lease_expiries_total": set(),
}
HISTOGRAMS: dict[str, set[str]] = {
    "rota_dispatch_latency_seconds": set(),
    "rota_queue_wait_seconds": set(),
    "rota_job_duration_seconds": set(),
    "rota_http_request_duration_seconds": {"method", "route"},
    "rota_redis_script_duration_seconds": {"script"},
}
# What Prometheus adds itself: the scrape's health series and target labels.
PROMETHEUS_SERIES = {"up"}
TARGET_LABELS = {"job", "instance"}


def known_series() -> dict[str, set[str]]:
    """Every series name a query may use, with the labels it carries."""
    known = {name: labels | TARGET_LABELS for name, labels in SERIES.items()}
    for name, labels in HISTOGRAMS.items():
        known[f"{name}_bucket"] = labels | TARGET_LABELS | {"le"}
        known[f"{name}_sum"] = labels | TARGET_LABELS
        known[f"{name}_count"] = labels | TARGET_LABELS
    for name in PROMETHEUS_SERIES:
        known[name] = set(TARGET_LABELS)
    return known


# --- reading PromQL ---------------------------------------------------------

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_MATCHERS = re.compile(r"\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
_BRACKETS = re.compile(r"\[[^\]]*\]")
_MODIFIER = re.compile(r"(?:\boffset|@)\s*-?[\w.]+")
_NUMBER = re.compile(r"(?<![\w:])(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)(?:[smhdwy]|ms)?")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = {"and", "or", "unless", "bool", "by", "without", "on", "ignoring", "group_left",
             "group_right", "offset", "inf", "nan"}


def _without_strings(expr: str) -> str:
    if "__name__" in expr:
        raise ValueError(f"a __name__ matcher hides the series name from this check: {expr!r}")
    # Grafana's $variables sit inside strings or brackets; drop them first so
    # a `$__rate_interval` is never read as a name.
    return _VARIABLE.sub("", _STRING.sub('""', expr))


def series_in(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: the identifiers left
    once strings, label matchers, grouping clauses, ranges, modifiers,
    numbers, function calls and keywords are taken out."""
    text = _without_strings(expr)
    text = _GROUPING.sub(" ", text)
    text = _MATCHERS.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    text = _MODIFIER.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        name = match.group()
        if name.lower() in _KEYWORDS or re.match(r"\s*\(", text[match.end():]):
            continue  # an operator, or a function or aggregation called
        names.add(name)
    return names


def labels_in(expr: str) -> set[str]:
    """The label names an expression matches on or groups by."""
    text = _without_strings(expr)
    found = set()
    for clause in _GROUPING.findall(text):
        found |= {part.strip() for part in clause.split(",") if part.strip()}
    for block in _MATCHERS.findall(text):
        found |= set(_MATCHER_LABEL.findall(block))
    return found


def test_series_in_reads_the_names_a_query_selects():
    expr = ('histogram_quantile(0.95, max by (le, route) (rate('
            'rota_http_request_duration_seconds_bucket{job="$job", route=~"/api/{id}"}[$__rate_interval])))')
    assert series_in(expr) == {"rota_http_request_duration_seconds_bucket"}
    assert labels_in(expr) == {"le", "route", "job"}
    expr = ('(max by (job, labels) (deriv(rota_queue_ready_jobs[15m])) > 0 and on (job) rota_x offset 5m)'
            ' unless max without (instance) (rota_queue_paused) == 1 or absent(up{job="rota"}) * 1e3')
    assert series_in(expr) == {"rota_queue_ready_jobs", "rota_x", "rota_queue_paused", "up"}
    assert labels_in(expr) == {"job", "labels", "instance"}
    assert series_in('label_replace(rota_jobs, "labels", "(none)", "labels", "")') == {"rota_jobs"}
    assert series_in("sum(rota_claims_total) by (le) / 60 * 0.5") == {"rota_claims_total"}
    with pytest.raises(ValueError):
        series_in('{__name__="rota_jobs"}')


def check_expression(where: str, expr: str) -> list[str]:
    """What is wrong with one expression against the contract."""
    known = known_series()
    problems = []
    names = series_in(expr)
    if not names:
        problems.append(f"{where}: selects no series: {expr}")
    for name in sorted(names - set(known)):
        problems.append(f"{where}: {name} is not a series rota exports")
    allowed = set().union(*(known[name] for name in names if name in known)) if names else set()
    for label in sorted(labels_in(expr) - allowed):
        problems.append(f"{where}: label {label!r} is on none of {sorted(names)}")
    return problems


def test_the_contract_check_can_fail():
    assert check_expression("x", "rate(rota_claims_total[5m])") == []
    assert check_expression("x", "rate(rota_claim_total[5m])")
    assert check_expression("x", 'max by (reason) (rota_claims_total)')
    assert check_expression("x", "rota_dispatch_latency_seconds_bucket") == []
    assert check_expression("x", "rota_dispatch_latency_bucket")


# --- the dashboard ----------------------------------------------------------

def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(board: dict) -> list[dict]:
    """Every panel, rows' collapsed panels included, rows themselves not."""
    out = []
    for panel in board["panels"]:
        out.extend(panel.get("panels", []))
        if panel["type"] != "row":
            out.append(panel)
    return out


def dashboard_expressions(board: dict) -> list[tuple[str, str]]:
    found = [(f"panel {p['title']!r}", t["expr"]) for p in panels(board) for t in p.get("targets", [])]
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", query)
            assert inner, f"variable {var['name']}: {query}"
            found.append((f"variable {var['name']!r}", inner.group(1)))
    return found


def test_the_dashboard_is_an_importable_grafana_dashboard():
    board = dashboard()
    assert board["schemaVersion"] >= 39
    assert board["uid"] and board["title"]
    inputs = {i["name"]: i for i in board["__inputs"]}
    assert inputs["DS_PROMETHEUS"]["type"] == "datasource"
    assert inputs["DS_PROMETHEUS"]["pluginId"] == "prometheus"
    ids = [p["id"] for p in board["panels"]] + [p["id"] for r in board["panels"] for p in r.get("panels", [])]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels(board):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]) and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"
            assert target["refId"] and target["expr"].strip()
    rows = [p for p in board["panels"] if p["type"] == "row"]
    cells = [(p["title"], x, y) for p in rows + panels(board)
             for x in range(p["gridPos"]["x"], p["gridPos"]["x"] + p["gridPos"]["w"])
             for y in range(p["gridPos"]["y"], p["gridPos"]["y"] + p["gridPos"]["h"])]
    taken: dict = {}
    for title, x, y in cells:
        assert taken.setdefault((x, y), title) == title, f"{title!r} overlaps {taken[(x, y)]!r}"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    labels = variables["labels"]
    assert labels["type"] == "query" and labels["multi"] and labels["includeAll"]
    # All must also match the label set without labels, which Prometheus
    # stores with no `labels` label at all.
    assert labels["allValue"] == ".*"
    assert labels["datasource"]["uid"] == "${DS_PROMETHEUS}"


# Each panel the issue asks for: a title word, the series it must draw, and
# what it must group by.
WANTED = [
    ("backlog", {"rota_queue_ready_jobs"}, {"labels"}),
    ("oldest", {"rota_queue_oldest_ready_age_seconds"}, {"labels"}),
    ("claims", {"rota_claims_total", "rota_completions_total"}, set()),
    ("failures", {"rota_failures_total"}, {"reason"}),
    ("retries", {"rota_retries_total", "rota_dead_letters_total"}, set()),
    ("lease expiries", {"rota_lease_expiries_total"}, set()),
    ("dispatch latency", {"rota_dispatch_latency_seconds_bucket"}, {"le"}),
    ("job duration", {"rota_job_duration_seconds_bucket"}, {"le"}),
    ("queue wait", {"rota_queue_wait_seconds_bucket"}, {"le"}),
    ("workers by status", {"rota_workers"}, {"status"}),
    ("free slots", {"rota_queue_free_slots", "rota_queue_ready_jobs"}, {"labels"}),
    ("runs by status", {"rota_runs"}, {"status"}),
    ("http", {"rota_http_request_duration_seconds_bucket"}, {"le", "route"}),
    ("redis script", {"rota_redis_script_duration_seconds_bucket"}, {"le", "script"}),
    ("sse", {"rota_sse_streams_open"}, set()),
]


def test_the_dashboard_has_the_panels_operators_look_for():
    board = dashboard()
    for word, series, grouped in WANTED:
        # The graphs; the stats at the top only sum them up.
        found = [p for p in panels(board) if p["type"] == "timeseries" and word in p["title"].lower()]
        assert len(found) == 1, f"one graph titled with {word!r}, found {[p['title'] for p in found]}"
        exprs = [t["expr"] for t in found[0]["targets"]]
        drawn = set().union(*map(series_in, exprs))
        assert series <= drawn, f"{found[0]['title']!r} draws {drawn}, not {series}"
        assert grouped <= set().union(*map(labels_in, exprs)), f"{found[0]['title']!r} is not by {grouped}"
        if "le" in grouped:
            quantiles = {re.search(r"histogram_quantile\(([\d.]+),", e).group(1) for e in exprs}
            wanted = {"0.95"} if {"route", "script"} & grouped else {"0.5", "0.95", "0.99"}
            assert quantiles == wanted, found[0]["title"]
            assert all("rate(" in e for e in exprs)


def test_every_dashboard_query_uses_only_series_rota_exports():
    board = dashboard()
    problems = [p for where, expr in dashboard_expressions(board) for p in check_expression(where, expr)]
    assert not problems, "\n".join(problems)
    # Every query of a per-label-set series follows the variable, so
    # picking label sets narrows the whole board.
    for panel in panels(board):
        for target in panel["targets"]:
            if any("labels" in SERIES.get(name, set()) for name in series_in(target["expr"])):
                assert 'labels=~"$labels"' in target["expr"], (panel["title"], target["expr"])


def test_fleet_wide_series_are_never_summed_across_replicas():
    """Every rota_* series is fleet-wide: each replica scraped answers the
    same numbers, so adding them up across instances counts the fleet once
    per replica. Queries take the max across instances first."""
    board = dashboard()
    exprs = [e for _, e in dashboard_expressions(board)] + [r["expr"] for r in alert_rules()]
    for expr in exprs:
        assert not re.search(r"\b(sum|count)\s*(by\s*\([^)]*\)\s*)?\(\s*(rate|increase|deriv)?\(?\s*rota_", expr), expr


# --- the alert rules --------------------------------------------------------

def alert_rules() -> list[dict]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


WANTED_ALERTS = {
    "RotaBacklogGrowing": {"rota_queue_ready_jobs"},
    "RotaOldestReadyJobTooOld": {"rota_queue_oldest_ready_age_seconds"},
    "RotaLeaseExpiriesRising": {"rota_lease_expiries_total"},
    "RotaNoLiveWorkerForQueuedLabels": {"rota_queue_ready_jobs", "rota_queue_live_workers"},
    "RotaDeadLettersRising": {"rota_dead_letters_total"},
    "RotaMetricsDown": {"up"},
}


def test_the_alert_rules_cover_what_operators_page_on():
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert set(rules) == set(WANTED_ALERTS)
    problems = []
    for name, rule in rules.items():
        assert WANTED_ALERTS[name] <= series_in(rule["expr"]), name
        assert re.fullmatch(r"\d+[smh]", rule["for"]), name
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["summary"].strip() and rule["annotations"]["description"].strip(), name
        problems += check_expression(f"alert {name}", rule["expr"])
    assert not problems, "\n".join(problems)
    assert "up == 0" in re.sub(r"\{[^}]*\}", "", rules["RotaMetricsDown"]["expr"])


def test_every_alert_has_a_firing_and_a_quiet_unit_test():
    doc = yaml.safe_load(ALERTS_TEST.read_text())
    assert doc["rule_files"] == ["alerts.yml"]
    fired, quiet = set(), set()
    for case in doc["tests"]:
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert fired == set(WANTED_ALERTS), f"never shown firing: {set(WANTED_ALERTS) - fired}"
    assert quiet == set(WANTED_ALERTS), f"never shown quiet: {set(WANTED_ALERTS) - quiet}"


# --- promtool ---------------------------------------------------------------

def promtool() -> str:
    path = shutil.which("promtool")
    if path:
        return path
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail("promtool is missing in CI: .ci/run must install Debian's prometheus", pytrace=False)
    pytest.skip("no promtool on this machine (apt-get install prometheus)")


def run_promtool(*args: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_promtool_accepts_the_alert_rules():
    done = run_promtool("check", "rules", ALERTS.name)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_of_the_alerts_pass():
    done = run_promtool("test", "rules", ALERTS_TEST.name)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_fail_when_an_alert_is_wrong(tmp_path):
    """The unit tests can fail: with one threshold changed they do."""
    rules = ALERTS.read_text()
    broken = rules.replace("rota_queue_oldest_ready_age_seconds) > 600", "rota_queue_oldest_ready_age_seconds) > 6000")
    assert broken != rules
    (tmp_path / "alerts.yml").write_text(broken)
    shutil.copy(ALERTS_TEST, tmp_path / "alerts_test.yml")
    done = run_promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert done.returncode != 0 and "RotaOldestReadyJobTooOld" in done.stdout + done.stderr


# What Grafana puts in for its variables, to hand the queries to promtool.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h",
                     "$job": "rota", "$labels": ".*"}


def as_prometheus_query(where: str, expr: str) -> str:
    """A dashboard query with Grafana's variables put in, as Prometheus gets it."""
    for variable, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"{where}: a Grafana variable this test does not know: {expr}"
    return expr


def test_promtool_accepts_every_dashboard_query(tmp_path):
    """promtool has no expression checker of its own, but checks a rule's
    PromQL: each query goes in as a recording rule."""
    board = dashboard()
    rules = []
    for n, (where, expr) in enumerate(dashboard_expressions(board)):
        rules.append({"record": f"dashboard:query_{n}", "expr": as_prometheus_query(where, expr)})
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = run_promtool("check", "rules", "dashboard.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def synthetic_series() -> list[dict]:
    """Every contract series as two replicas would export it, over an hour:
    gauges steady, counters and histogram buckets rising."""
    values = {"labels": ["gpu", None], "state": ["ready", "running", "delayed"], "status": ["idle", "busy"],
              "reason": ["error"], "method": ["GET"], "route": ["/api/runs"], "script": ["claim"]}

    def label_sets(names: set[str]) -> list[dict]:
        sets: list[dict] = [{}]
        for name in sorted(names):
            sets = [{**s, name: v} if v is not None else s for s in sets for v in values[name]]
        return sets

    def series(name: str, labels: dict, vals: str) -> list[dict]:
        return [{"series": name + "{" + ", ".join(f'{k}="{v}"' for k, v in
                                                  sorted({**labels, "job": "rota", "instance": i}.items())) + "}",
                 "values": vals} for i in ("a", "b")]

    out = []
    for name, names in SERIES.items():
        for labels in label_sets(names):
            out += series(name, labels, "0+1x60" if name.endswith("_total") else "3x60")
    for name, names in HISTOGRAMS.items():
        for labels in label_sets(names):
            for le, step in (("0.1", 1), ("1", 3), ("+Inf", 4)):
                out += series(f"{name}_bucket", {**labels, "le": le}, f"0+{step}x60")
            out += series(f"{name}_sum", labels, "0+2x60") + series(f"{name}_count", labels, "0+4x60")
    return out + series("up", {}, "1x60")


def test_every_dashboard_query_draws_something_from_rota_series(tmp_path):
    """Each query, on synthetic series shaped as the contract says, returns
    at least one sample: a query that matches nothing (a wrong label, a
    join that never meets) draws an empty panel. Each becomes an alert
    `absent(query)`, which fires exactly when the query is empty; a canary
    on a series that does not exist shows the check can fire."""
    board = dashboard()
    rules, quiet = [], []
    for n, (where, expr) in enumerate(dashboard_expressions(board)):
        name = f"Empty{n}"
        rules.append({"alert": name, "expr": f"absent({as_prometheus_query(where, expr)})",
                      "annotations": {"where": where}})
        quiet.append({"eval_time": "30m", "alertname": name, "exp_alerts": []})
    rules.append({"alert": "Canary", "expr": "absent(rota_no_such_series)"})
    canary = {"eval_time": "30m", "alertname": "Canary", "exp_alerts": [{"exp_labels": {}}]}
    (tmp_path / "queries.yml").write_text(yaml.safe_dump({"groups": [{"name": "queries", "rules": rules}]}))
    (tmp_path / "queries_test.yml").write_text(yaml.safe_dump({
        "rule_files": ["queries.yml"], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": synthetic_series(), "alert_rule_test": quiet + [canary]}]}))
    done = run_promtool("test", "rules", "queries_test.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
