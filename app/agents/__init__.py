"""Faust wiring: agents and services that connect the domain to topics and HTTP."""
