"""The use cases: job, authorization, status, log and dead-letter operations, returning
models. The CLI (`app/cli`) and the HTTP API (`app/api`) are thin shells over them: neither
validates nor talks to Kafka on its own."""
