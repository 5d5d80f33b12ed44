"""Evaluation: measures the built stack (prompt classifier, rewriter, regeneration) and writes reports
(markdown, JSON, plots). Imports the core, `t2iguard.export` and `t2iguard.training` (data and judges)."""
