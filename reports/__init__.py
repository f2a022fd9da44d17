"""PDF and CSV report builders and their schedules."""
