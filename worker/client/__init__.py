"""The HTTP client for the rota API, shared by the worker daemon and the
`rota` command line: api (the `Client`), runs (its run-management calls),
errors (what a failed call raises), sse (reading event streams), reconnect
(the CLI's waiting out of a server outage). The in-job SDK (worker/sdk.py)
is separate: standard library only."""
