"""``python -m silentfail`` runs the CLI."""

from .cli import main

main()
