"""Triton python model for every ensemble on the `cpu` target: runs the ensemble's steps in one process
(`t2iguard.triton.backend.EnsembleModel`); the `onnx` and `trt` targets render a Triton ensemble instead."""

from t2iguard.triton.backend import EnsembleModel


class TritonPythonModel(EnsembleModel):
    pass
