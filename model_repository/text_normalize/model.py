"""Triton python model `text_normalize`: the `t2iguard.stages.TextNormalize` stage (spec: `t2iguard.specs`)."""

from t2iguard.serving import StageModel
from t2iguard.stages import TextNormalize


class TritonPythonModel(StageModel):
    stage = TextNormalize
