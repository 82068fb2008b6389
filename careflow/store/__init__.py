"""careflow's FHIR resource store: the port (``port``), a SQL adapter (``sql``, SQLite or PostgreSQL,
schema by Alembic migrations) and an in-memory twin (``memory``).  Open one with
``careflow.store.database.open_repository(url)``; see ``port`` for the contract."""
