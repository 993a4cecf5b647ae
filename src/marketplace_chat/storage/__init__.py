"""Durable state: the `Storage` interface and its PostgreSQL implementation."""
