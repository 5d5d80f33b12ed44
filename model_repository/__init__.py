"""The python-backend models: thin `model.py` shims over `t2iguard.triton.backend` (the builder copies them into a
built repository)."""
