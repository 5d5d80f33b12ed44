"""Evaluation: measures the built stack (prompt classifier, rewriter, regeneration) and writes reports
(markdown, JSON, plots); validates the judges on a labelled sample of generated images (`judge_sample`,
`label_tool`, `judge_agreement`). Imports the core, `t2iguard.export` and `t2iguard.training` (data and
judges)."""
