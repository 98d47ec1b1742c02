"""Kedro project settings for mc-simclr.

Parameters merge softly across environments: ``conf/test`` or ``conf/paper`` (or a user's
``conf/local``) can override one key of a nested block and keep its siblings from ``conf/base``.
kedro-mlflow registers its hooks itself through the plugin entry point.
"""

from kedro.config import OmegaConfigLoader

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "merge_strategy": {"parameters": "soft", "mlflow": "soft"},
    "config_patterns": {"mlflow": ["mlflow*", "mlflow*/**"]},
}
