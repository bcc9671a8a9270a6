"""Stage 9, pipelines: a whole protocol (data, patches, training, evaluation) from one YAML file.

``config`` parses ``pipelines/*.yaml``, ``steps`` runs each step resumably, ``report`` renders
the tables.
"""
