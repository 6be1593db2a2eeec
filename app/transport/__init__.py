"""Transports: Kafka (admin, producers, consumers, readers), the webhook HTTP client and
OAuth token cache, the worker's health/metrics server, the template runner. No domain
decisions here."""
