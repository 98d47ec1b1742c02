"""The variant names of the ``ablations`` parameter block, read when the pipeline is created.

Kedro builds pipelines before it loads parameters, so the names are read here with the project's
own config loader: ``conf/base`` merged with the run's environment. The environment is the one
``kedro run --env`` was given, else ``KEDRO_ENV``, else ``local`` (Kedro's default). Parameter
*values* still come from the session at run time, as for every other pipeline.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
from kedro.config import OmegaConfigLoader
from kedro.utils import find_kedro_project

from mc_simclr import settings
from mc_simclr.sweeps import parse_variants


def run_env() -> str:
    """The environment of the current ``kedro`` command, else ``KEDRO_ENV``, else ``local``."""
    context = click.get_current_context(silent=True)
    while context is not None:
        env = context.params.get("env")
        if env:
            return str(env)
        context = context.parent
    return os.environ.get("KEDRO_ENV") or "local"


def variant_names(project_path: Path | None = None, env: str | None = None, sweep: str = "ablations") -> list[str]:
    """Names of ``<sweep>.variants`` in the project's configuration (empty if it has none)."""
    return list(variant_sources(project_path, env, sweep))


def variant_sources(
    project_path: Path | None = None, env: str | None = None, sweep: str = "ablations"
) -> dict[str, str | None]:
    """``<sweep>.variants`` of the project's configuration in their order: name -> the variant whose
    encoders it evaluates (``encoder_from``), None for one that has its own."""
    project = project_path or find_kedro_project(Path.cwd())
    if project is None:
        raise RuntimeError(
            f"The {sweep} pipeline reads its variants from the project's conf/, but {Path.cwd()} is not "
            "inside a Kedro project: run kedro from the project folder"
        )
    loader = OmegaConfigLoader(
        conf_source=str(Path(project) / getattr(settings, "CONF_SOURCE", "conf")),
        env=env or run_env(),
        **settings.CONFIG_LOADER_ARGS,
    )
    params = loader["parameters"]
    if sweep not in params:
        return {}
    return {variant.name: variant.encoder_from for variant in parse_variants(params[sweep], sweep)}
