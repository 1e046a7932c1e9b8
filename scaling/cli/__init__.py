"""The ``scaling`` command line: one module per subcommand, each a thin shell over the library."""

from scaling.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
