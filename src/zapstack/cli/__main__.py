"""``python -m zapstack.cli``: the ``zap`` command line."""

from zapstack.cli.app import main

main()
