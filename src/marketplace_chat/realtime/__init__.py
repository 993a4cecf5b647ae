"""Shared real-time state in Redis: presence, typing, rate limits, the auth cache's store."""
