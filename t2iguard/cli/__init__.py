"""The `t2iguard` command (typer app), its demo, its benchmark and the training-data filter (`filter.py`); the
only layer that imports every other.
Build, training and evaluation modules are imported inside the commands that use them, so `--help` and the
serving commands start without torch."""
