"""``python -m milco_os`` runs the ``milco-os`` command line."""

from milco_os.cli import main

main()
