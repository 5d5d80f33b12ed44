"""Triton python model `prompt_policy`: the `t2iguard.stages.PromptPolicy` stage (spec: `t2iguard.specs`)."""

from t2iguard.serving import StageModel
from t2iguard.stages import PromptPolicy


class TritonPythonModel(StageModel):
    stage = PromptPolicy
