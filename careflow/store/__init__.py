"""careflow's FHIR resource store.

* ``port``: the contract (Repository, UnitOfWork, Stored, SearchResult, OutboxEvent, listeners).
* ``database``: ``resolve_url`` (argument, $CAREFLOW_DATABASE_URL, else SQLite in the user data dir),
  ``make_engine`` (SQLite: WAL, busy timeout, BEGIN IMMEDIATE for writes), ``upgrade`` (Alembic, run at
  open) and ``open_repository(url)``.
* ``sql`` / ``sql_search`` / ``tables`` / ``migrations``: the SQLAlchemy adapter (SQLite, PostgreSQL).
* ``memory``: the in-memory twin, same semantics (one contract suite in tests/store runs both).
* ``unit_of_work``: the FHIR write flows both adapters share (If-Match, If-None-Exist, conditional
  update/delete, listeners) over a few atomic primitives each backend provides.

Search parameters and query parsing are pure and live in ``careflow.fhir.search_params``,
``search_query``, ``search_index`` (index rows of a resource) and ``search_match`` (the in-memory
matcher the SQL translation mirrors).
"""
