"""PostgreSQL backend that carries the acting principal into every transaction."""
