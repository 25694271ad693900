"""Development and test tooling: provisions PostgreSQL/Redis and drives `make run`/`make test`."""
