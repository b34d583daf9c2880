"""The ``vpp`` command line."""
