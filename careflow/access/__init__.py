"""Who is calling and what they may see: principals, SMART scopes, the Belgian access rules as data.

Pure: no framework, no store.  The store narrows every query with these rules (``careflow.store``),
the API turns a bearer token into a :class:`~careflow.access.principal.Principal` (``careflow.auth``).
"""
