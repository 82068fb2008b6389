"""Encryption at rest: the value envelope (AES-256-GCM with a key id per value) and the master key.

Pure of any storage: ``careflow.store.keyring`` keeps the wrapped data keys in the database and uses
these pieces; ``careflow.fhir.identifying`` decides which index values are blinded.
"""
