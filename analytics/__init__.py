"""Analytics: Polars/numpy reads and jobs over the metrics store.

Fleet views, thresholds, anomaly scores and SLAs. Imports only the ``netpulse`` core (plus polars,
numpy, psycopg and sqlalchemy); never ``ingest``, ``reports``, ``workers`` or ``dashboard``.
"""
