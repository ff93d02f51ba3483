"""The bundled Consul-compatible agent."""
