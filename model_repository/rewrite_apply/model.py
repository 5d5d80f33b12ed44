"""Triton python model `rewrite_apply`: the `t2iguard.stages.RewriteApply` stage (spec: `t2iguard.specs`)."""

from t2iguard.serving import StageModel
from t2iguard.stages import RewriteApply


class TritonPythonModel(StageModel):
    stage = RewriteApply
