"""Local stand-ins for the outside world, used by the demo, the benchmark and the tests:
an HTTPS webhook receiver with a test CA. Never used by a worker."""
