"""Triton python model `text_normalize`: `t2iguard.runtime.stages.TextNormalize`; its spec is in
`t2iguard.contract.specs`."""

from t2iguard.runtime.stages import TextNormalize
from t2iguard.triton.backend import StageModel


class TritonPythonModel(StageModel):
    stage = TextNormalize
