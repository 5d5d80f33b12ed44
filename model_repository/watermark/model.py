"""Triton python model `watermark`: the `t2iguard.stages.Watermark` stage (spec: `t2iguard.specs`)."""

from t2iguard.serving import StageModel
from t2iguard.stages import Watermark


class TritonPythonModel(StageModel):
    stage = Watermark
