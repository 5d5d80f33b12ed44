"""The `t2iguard` command (typer app), its demo and its benchmark; the only layer that imports every other.
Build, training and evaluation modules are imported inside the commands that use them, so `--help` and the
serving commands start without torch."""
