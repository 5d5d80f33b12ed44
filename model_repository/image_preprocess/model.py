"""Triton python model `image_preprocess`: the `t2iguard.stages.ImagePreprocess` stage (spec: `t2iguard.specs`)."""

from t2iguard.serving import StageModel
from t2iguard.stages import ImagePreprocess


class TritonPythonModel(StageModel):
    stage = ImagePreprocess
