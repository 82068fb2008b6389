"""The audit trail: an IHE BALP AuditEvent for every interaction with the store, kept in an
append-only, hash-chained and keyed log (see README, "Audit trail").

* ``context``: the request facts (client address, request id) the API hands the store;
* ``record``: what the store captures per interaction (``AuditRecord``) and its AuditEvent (BALP);
* ``chain``: the MAC chain and its verification (pure);
* ``log``: where records go: the SQL log (buffered, appended by a background writer) and the
  in-memory twin;
* ``serve``: AuditEvent search for the API (auditors, and patients for their own record).
"""
