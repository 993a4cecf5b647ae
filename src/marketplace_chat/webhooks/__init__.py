"""Events for marketplace-api: signed webhooks delivered from the transactional outbox."""
