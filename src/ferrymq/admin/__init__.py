"""Management: HTTP API, health, metrics."""
