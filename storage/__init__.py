"""The record: SQLModel tables, queries, sessions, the retry ledger and Alembic migrations, on SQLite and
PostgreSQL. Imports only the core (`hms`)."""
