"""The HTTP API (`webhooks api`): JSON under /v1 over the use cases, the OpenAPI document,
and the jobs dashboard."""
