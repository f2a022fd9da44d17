"""NetPulse core: settings, database, schema, inventory, users and the CLI."""

__version__ = "0.1.0"
