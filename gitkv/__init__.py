"""gitkv: GitOps for Consul-style clusters."""
