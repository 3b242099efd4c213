"""nextbest.warehouse: the data contract and operations on the DuckDB warehouse.

``schema``      every table and column, declared once (drives DDL, import, quality, docs)
``db``          opening the warehouse, transactions
``importer``    ``nextbest data import``: validate a CSV/Parquet file, load it atomically
``validation``  the set-based checks an import runs on its staging table
``quality``     ``nextbest data quality``: completeness, contacts, consent, staleness, orphans
``summary``     ``nextbest data summary``: counts, consent, date ranges, campaign response
``erasure``     ``nextbest data forget`` and the eraser registry (right to be forgotten)
``privacy``     ``assert_no_personal_data``: keeps personal columns out of models and MLflow
``contact``     e-mail and phone formats shared by quality checks and generators
``datamodel``   renders docs/data-model.md from ``schema``
``hillstrom``   the Hillstrom e-mail experiment mapped onto the contract
"""
