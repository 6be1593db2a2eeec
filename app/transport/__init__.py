"""Transports: Kafka admin/producer/readers and (later) HTTP. No domain decisions here."""
