"""t2iguard: a text-to-image service with a layered safety stack served by NVIDIA Triton.

The package root is the shared runtime core (policy, schedulers, guidance math, image codecs,
model specs) used alike by `t2iguard.export` (build time), the python-backend models under
`model_repository/` (serve time) and `t2iguard.client`. It imports no torch.
"""

__version__ = "0.1.0"
