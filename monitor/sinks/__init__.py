"""Where alerts go besides ClickHouse: signed webhooks (with a persistent outbox) and the alerts topic."""
