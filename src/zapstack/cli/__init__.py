"""The ``zap`` command line: the top layer, nothing imports it.

* :mod:`~zapstack.cli.app` -- the typer app and its commands (``zap --help``).
* :mod:`~zapstack.cli.ceremony` -- ``zap init`` and ``zap genesis``: keys and genesis.
* :mod:`~zapstack.cli.demo` -- ``zap demo``: a rich tour of frames and ingress.

The console script ``zap = "zapstack.cli:main"`` runs :func:`main`;
``python -m zapstack.cli`` does the same.
"""

from zapstack.cli.app import app, main

__all__ = ["app", "main"]
