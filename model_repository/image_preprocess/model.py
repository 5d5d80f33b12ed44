"""Triton python model `image_preprocess`: `t2iguard.runtime.stages.ImagePreprocess`; its spec is in
`t2iguard.contract.specs`."""

from t2iguard.runtime.stages import ImagePreprocess
from t2iguard.triton.backend import StageModel


class TritonPythonModel(StageModel):
    stage = ImagePreprocess
