"""Triton python model for every exported network on the `cpu` target: runs `1/model.onnx`
with onnxruntime (the `onnx` and `trt` targets use Triton's own backends instead)."""

from t2iguard.triton.backend import NetworkModel


class TritonPythonModel(NetworkModel):
    pass
