"""``python -m analytics.anomaly score FILE.csv`` (see :mod:`analytics.anomaly.cli`)."""

from analytics.anomaly.cli import main

main()
