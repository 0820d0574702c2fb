"""`python -m authserver.cli` is the `authserver` command (for a checkout without the script)."""
from . import main

main()
