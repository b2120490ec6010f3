"""The ``4dnex`` command: one thin module per subcommand over the library."""
