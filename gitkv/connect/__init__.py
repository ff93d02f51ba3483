"""The built-in Connect proxy: `gitkv connect proxy`, a mesh sidecar like Consul's own.

A client of the local agent's HTTP API, as `gitkv` itself is: it takes its leaf certificate
and the CA roots from `/v1/agent/connect/ca/*`, asks `/v1/agent/connect/authorize` about
each inbound caller, and finds upstream instances through the health or catalog API. It
imports nothing of the agent.

    cli        command line -> flags -> config -> Proxy, signals, logging
    flags      Go-style parsing of `consul connect proxy`'s flags (pure)
    config     ProxyConfig from the flags or from a sidecar registration (pure)
    spiffe     SPIFFE service identities in peer certificates (pure)
    proxy      one running proxy: start, wait, close
    listeners  the public (mTLS in) and upstream (mTLS out) listeners
    pipe       copying bytes between two connections
    certs      the current TLS contexts, rebuilt when the leaf or roots change
    tls        ssl.SSLContexts from the agent's PEMs
    authz      authorize decisions, cached for half a second
    resolve    upstream instances, cached for a second
    cache      the TTL + single-flight cache both use
    agentapi   the async HTTP client of the agent
"""

from gitkv.connect.config import ProxyConfig, PublicListener, Upstream
from gitkv.connect.proxy import Proxy

__all__ = ["Proxy", "ProxyConfig", "PublicListener", "Upstream"]
