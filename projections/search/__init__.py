"""The registry's discovery search: one read model, one backend per file (PostgreSQL full-text,
SQLite FTS5, Elasticsearch), all answering `index.AgentSearch`."""
