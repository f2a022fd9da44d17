"""PDF and CSV reports (availability/SLA, performance, alerts) and their schedules.

What the CLI, the REST API and the dashboard call (each takes a psycopg connection and the
organization's id; every query is filtered by it):

- make one now: :func:`reports.generate.generate` (kind, :class:`~reports.scope.Scope`,
  :class:`~reports.period.ReportPeriod` from :func:`~reports.period.parse_period`, ``pdf``/``csv``)
  returns the file, its name, content type, figures and page count;
- request one for a worker: :func:`reports.runs.request_run` (scope and period as typed, read by
  :func:`reports.generate.resolve`), then send ``workers.generate_report`` with the run id;
  :func:`reports.runs.get_run` follows it;
- history and download: :func:`reports.runs.list_runs`, :func:`reports.runs.get_run`,
  :func:`reports.runs.run_file`;
- schedules: :func:`reports.schedules.add_schedule`, :func:`~reports.schedules.list_schedules`,
  :func:`~reports.schedules.get_schedule`, :func:`~reports.schedules.remove_schedule`.

Layout: ``document`` (a report as data), one builder per report (``availability``, ``performance``,
``alerts``), two renderers (``pdf``, ``csvout``), ``period`` and ``scope`` (what a report covers),
``schedules``, ``runs`` (claimed once, made under a lock, its emails queued in the notification
outbox with its file) and ``email`` (what a report's email says, and its outbox key:
:func:`reports.email.report_message`).
"""
