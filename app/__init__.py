"""audience-webhooks: turns audience changes on Kafka into webhooks."""

__version__ = "0.1.0"
