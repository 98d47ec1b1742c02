"""Kedro project settings for mc-simclr.

Parameters merge softly across environments: ``conf/test`` or ``conf/paper`` (or a user's
``conf/local``) can override one key of a nested block and keep its siblings from ``conf/base``.
kedro-mlflow registers its hooks itself through the plugin entry point. MLflow's own telemetry is
switched off here, for every run.
"""

import os
import sys

# MLflow 3 sends usage telemetry unless told not to (it resolves its host on every run): off for
# every run of this project, before MLflow is used. An explicit setting in the environment wins.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
if "mlflow" in sys.modules:  # imported before these settings (by a Kedro plugin): drop its client
    from mlflow.telemetry.client import set_telemetry_client

    set_telemetry_client()

from kedro.config import OmegaConfigLoader  # noqa: E402

from mc_simclr.hooks import MlflowRunNames, ParameterChecks  # noqa: E402

HOOKS = (ParameterChecks(), MlflowRunNames())

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "merge_strategy": {"parameters": "soft", "mlflow": "soft"},
    "config_patterns": {"mlflow": ["mlflow*", "mlflow*/**"]},
}
