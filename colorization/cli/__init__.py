"""The ``colorization`` command line: one module per subcommand."""
