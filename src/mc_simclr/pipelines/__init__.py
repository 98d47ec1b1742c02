"""The project's Kedro pipelines; each sub-package has ``nodes.py`` and ``pipeline.py``."""
