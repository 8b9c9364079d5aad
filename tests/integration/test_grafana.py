# deploy/grafana/roomcast.json against a real node: every metric name the
# dashboard's PromQL expressions (and its template variable query) name must
# be one a real roomcastd on a real Redis exports on /metrics, histograms
# counted by their _bucket/_sum/_count series; every label the queries group
# or match by must exist on those metrics. A dashboard query naming a metric
# the node does not export fails this test.
# SPDX-License-Identifier: MIT
import json
import re

from harness import REPO

DASHBOARD = REPO / "deploy" / "grafana" / "roomcast.json"

# PromQL words that look like identifiers but are not metric names
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right",
            "and", "or", "unless", "bool", "offset", "inf", "nan"}
# labels Prometheus adds at scrape time, and the histogram bucket label
SCRAPE_LABELS = {"instance", "job"}

_TYPE_RE = re.compile(r"^# TYPE (\S+) (\S+)$", re.MULTILINE)
_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})?\s", re.MULTILINE)
_LABEL_RE = re.compile(r'([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)')


def exported(text):
    """From Prometheus text: ({series name: set of label names}, {family:
    type}). A histogram family F is exported as F_bucket (with `le`), F_sum
    and F_count; the bare F is no series and is not in the result."""
    types = dict(_TYPE_RE.findall(text))
    series = {}
    for name, labels in _SAMPLE_RE.findall(text):
        series.setdefault(name, set()).update(
            _LABEL_RE.findall(labels or ""))
    for fam, typ in types.items():
        if typ == "histogram":
            assert fam + "_bucket" in series, f"histogram {fam} has no buckets"
            assert "le" in series[fam + "_bucket"], fam
            for suffix in ("_sum", "_count"):
                assert fam + suffix in series, f"histogram {fam}: no {suffix}"
            series.pop(fam, None)
        else:
            assert fam in series, f"# TYPE {fam} {typ} without samples"
    return series, types


def parse_expr(expr):
    """(metric names, [(metric, matcher label names)], grouping labels,
    histogram_quantile arguments' metrics) of one PromQL expression."""
    matchers = [(m, set(_LABEL_RE.findall(body)))
                for m, body in re.findall(r"([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}",
                                          expr)]
    e = re.sub(r"\{[^}]*\}", " ", expr)       # label matchers
    e = re.sub(r'"(?:[^"\\]|\\.)*"', " ", e)   # strings
    e = re.sub(r"\[[^\]]*\]", " ", e)          # ranges, subqueries
    groups = set()
    for labels in re.findall(r"\b(?:by|without|on|ignoring|group_left|"
                             r"group_right)\s*\(([^)]*)\)", e):
        groups.update(x.strip() for x in labels.split(",") if x.strip())
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*"
               r"\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w:$.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()",
                         e):
        if m.group(1).lower() not in KEYWORDS:
            names.add(m.group(1))
    hq = set()
    for inner in re.findall(r"histogram_quantile\s*\(\s*[\d.]+\s*,(.*)",
                            expr):
        hq.update(n for n in re.findall(r"([a-zA-Z_:][\w:]*)\s*[{\[]", inner))
    assert e.count("(") == e.count(")"), f"unbalanced parentheses: {expr}"
    return names, matchers, groups, hq


def dashboard_queries(dash):
    """Every PromQL expression of the dashboard: panel targets (rows
    included) and `label_values(metric, label)` variable queries."""
    out = []

    def walk(panels):
        for p in panels:
            if p.get("type") == "row":
                walk(p.get("panels", []))
                continue
            targets = p.get("targets") or []
            assert targets, f"panel {p.get('title')!r} has no query"
            for t in targets:
                assert t.get("expr"), f"panel {p.get('title')!r}: {t!r}"
                out.append((p["title"], t["expr"]))
    walk(dash["panels"])
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.fullmatch(r"\s*label_values\(\s*([^,]+?)\s*,\s*(\w+)\s*\)\s*",
                         q or "")
        assert m, f"variable {v.get('name')}: unexpected query {q!r}"
        out.append((f"${v['name']}", m.group(1) + " by (" + m.group(2) + ")"))
    return out


def check(queries, series):
    """The problems of queries [(where, expr)] against series."""
    problems = []
    for where, expr in queries:
        names, matchers, groups, hq = parse_expr(expr)
        if not names:
            problems.append(f"{where}: no metric in {expr!r}")
        for n in sorted(names - set(series)):
            problems.append(f"{where}: {n} is not exported by roomcastd "
                            f"(in {expr!r})")
        have = set().union(*(series.get(n, set()) for n in names)) \
            | SCRAPE_LABELS
        for lbl in sorted(groups - have):
            problems.append(f"{where}: label {lbl!r} is on none of "
                            f"{sorted(names)} (in {expr!r})")
        for m, lbls in matchers:
            for lbl in sorted(lbls - series.get(m, set()) - SCRAPE_LABELS):
                problems.append(f"{where}: {m} has no label {lbl!r}")
        for n in hq:
            if not n.endswith("_bucket"):
                problems.append(f"{where}: histogram_quantile over {n}, "
                                "not a _bucket series")
    return problems


def test_dashboard_queries_name_exported_metrics(redis, rnodes):
    """Scrape a real node on Redis; every query of the dashboard names
    series and labels it exports. The checker itself is shown to catch a
    misspelt metric, a bare histogram name and a missing label."""
    node = rnodes("A")
    st, body, _ = node.admin("/metrics")
    assert st == 200
    series, types = exported(body.decode())
    assert "roomcast_publish_deliver_seconds" in types
    assert "roomcast_redis_up" in series  # a node on Redis

    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    queries = dashboard_queries(dash)
    problems = check(queries, series)
    assert not problems, "\n".join(problems)

    used = set().union(*(parse_expr(e)[0] for _, e in queries))
    # what the dashboard promises to show
    for want in ("roomcast_connections", "roomcast_deliveries_total",
                 "roomcast_publish_deliver_seconds_bucket",
                 "roomcast_slow_consumer_closes_total",
                 "roomcast_auth_failures_total", "roomcast_redis_up",
                 "roomcast_draining", "roomcast_drain_clients_moved_total"):
        assert want in used, f"the dashboard does not show {want}"
    exprs = [e for _, e in queries]
    assert any("histogram_quantile(0.5," in e for e in exprs)
    assert any("histogram_quantile(0.99," in e for e in exprs)
    assert any("by (reason)" in e and "auth_failures" in e for e in exprs)
    print(f"{len(queries)} queries, {len(used)} metrics, all exported")

    # the checker fails what it must
    bad = check([("typo", "rate(roomcast_conections_total[5m])"),
                 ("bare", "histogram_quantile(0.9, sum by (le) "
                          "(rate(roomcast_publish_deliver_seconds[5m])))"),
                 ("label", "sum by (room) (roomcast_deliveries_total)")],
                series)
    assert any("roomcast_conections_total" in p for p in bad), bad
    assert any(p.startswith("bare:") and "not exported" in p
               for p in bad), bad
    assert any(p.startswith("label:") and "'room'" in p for p in bad), bad
