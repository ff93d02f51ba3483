"""Prepared queries: their definitions, templates and execution, as pure logic.

`definition` decodes and validates a query as Consul's `PreparedQuery.Apply` does, `template`
compiles and renders templates and resolves an ID or name to the query to run (Consul's
`PreparedQueryResolve`), `execute` (helper Q2's) filters and orders the instances. The
store's table is `agent/state/queries.py`; the HTTP area is `agent/http/query.py`.
"""
