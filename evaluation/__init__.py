"""Evaluation: measures the built stack (prompt classifier, rewriter, regeneration) and writes reports
(markdown, JSON, plots); validates the judges on a labelled sample of generated images (`judge_sample`,
`label_tool`, `judge_agreement`); runs them all at one size into one HTML page and a JSON of headline figures
(`report_all`, `html_report`: `t2iguard eval all`). Imports the core, `t2iguard.export` and `t2iguard.training`
(data and judges)."""
