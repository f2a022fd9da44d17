"""``python -m cli``: the ``netpulse`` command."""

from cli import main

main()
