"""End-to-end pipelines, one module per environment: `python -m experiments.<env>`.

They chain the stages (collect -> train -> recovery -> search) and arrive with those
stages; until then `lsc rollout` is the runnable entry point (see README).
"""
