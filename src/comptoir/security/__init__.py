"""Security pieces: capability tokens, TLS (local CA), passwords and sessions, headers."""
