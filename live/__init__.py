"""The live store: what the scoring service writes and reads per request.

Decisions (the contact register), outcomes, consent changes and erasure
tombstones live in a transactional database addressed by a SQLAlchemy URL:
SQLite (WAL) in the workspace by default, PostgreSQL for several workers or
machines. ``nextbest data sync`` copies new rows into the DuckDB warehouse.
"""
