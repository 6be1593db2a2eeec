"""Delivery of one job: queue -> batches -> requests (see job_delivery.py)."""
