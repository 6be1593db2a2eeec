"""Pure domain logic: no Kafka, no network. Agents and transports wire it to the world."""
