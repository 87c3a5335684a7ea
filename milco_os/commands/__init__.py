"""Sub-commands of the ``milco-os`` command line, one module per group."""
