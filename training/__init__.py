"""Training: the trainers of the project's own weights and the data generators they learn from (writes
`export/weights/`). Imports the core and `t2iguard.export` (network modules, checkpoint loaders)."""
