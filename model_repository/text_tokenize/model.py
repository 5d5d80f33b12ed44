"""Triton python model `text_tokenize`: `t2iguard.runtime.stages.TextTokenize`; its spec is in
`t2iguard.contract.specs`."""

from t2iguard.runtime.stages import TextTokenize
from t2iguard.triton.backend import StageModel


class TritonPythonModel(StageModel):
    stage = TextTokenize
