"""Prepared queries: their definitions, templates and execution.

`definition` decodes and validates a query as Consul's `PreparedQuery.Apply` does; `template`
compiles and renders templates (strings in `hil`, HashiCorp's interpolation language; the
`Regexp` in Go's dialect, `goregexp`) and resolves an ID or name to the query to run
(Consul's `PreparedQueryResolve`); `execute` filters and orders the instances (pure), and
`runner` runs a query on a server, failover across datacenters included. The store's table
is `agent/state/queries.py`; the HTTP areas are `agent/http/query.py` (definitions) and
`agent/http/query_exec.py` (execute, explain).
"""
