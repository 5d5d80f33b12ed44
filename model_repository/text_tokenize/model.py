"""Triton python model `text_tokenize`: the `t2iguard.stages.TextTokenize` stage (spec: `t2iguard.specs`)."""

from t2iguard.serving import StageModel
from t2iguard.stages import TextTokenize


class TritonPythonModel(StageModel):
    stage = TextTokenize
