"""Triton python model `watermark`: `t2iguard.runtime.stages.Watermark`; its spec is in
`t2iguard.contract.specs`."""

from t2iguard.runtime.stages import Watermark
from t2iguard.triton.backend import StageModel


class TritonPythonModel(StageModel):
    stage = Watermark
