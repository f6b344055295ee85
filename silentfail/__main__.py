"""``python -m silentfail`` runs the CLI."""

from .cli import main

if __name__ == "__main__":  # importing the module (e.g. for the API docs) runs nothing
    main()
