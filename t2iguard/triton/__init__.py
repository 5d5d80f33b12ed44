"""Triton: the python-backend adapters that `model_repository/*/model.py` subclass, and the `tritonserver`
launcher. Imports the runtime and the contract."""
