"""Fan-out: every stored event, PHI-minimised, to NATS JetStream (docs/events.md)."""
