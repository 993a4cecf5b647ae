"""Token verification: one interface, a local (JWT) and a remote verifier, and a cache."""
