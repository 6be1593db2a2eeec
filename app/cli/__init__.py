"""The `webhooks` command line."""
