"""Triton python model `prompt_policy`: `t2iguard.runtime.stages.PromptPolicy`; its spec is in
`t2iguard.contract.specs`."""

from t2iguard.runtime.stages import PromptPolicy
from t2iguard.triton.backend import StageModel


class TritonPythonModel(StageModel):
    stage = PromptPolicy
