"""The ACL system (Consul >= 1.4 model): rules, authorizers, token resolution, enforcement.

`rules` parses policy text, `authorizer` answers allow/deny with Consul's precedence,
`resolve` maps a request's secret to an authorizer, `enforce` holds the per-request helpers
and `guards` the permission table wrapped around every HTTP route when ACLs are enabled.
Records and FSM commands live in `agent/state/acl.py`, endpoints in `agent/http/acl.py`.
"""
