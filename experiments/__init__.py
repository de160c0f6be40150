"""End-to-end pipelines, one module per environment: `python -m experiments.<env>`
(see `lsc.pipeline`), and the tables and sweeps built on their runs
(`experiments.sample_efficiency`, `experiments.sweep`,
`experiments.compression_table`)."""
