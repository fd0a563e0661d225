"""Prometheus metrics (GET /metrics): what each process counts on the hot
path (tally.py), flushed into Redis for the whole fleet (flush.py), the
shared state read at a scrape (fleet.py), and its rendering (exposition.py).
docs/metrics.md lists every series."""
