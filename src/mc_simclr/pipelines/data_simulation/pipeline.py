"""``data_simulation`` pipeline definition."""

from kedro.pipeline import Node, Pipeline

from mc_simclr.pipelines.data_simulation.nodes import (
    prepare_corpus,
    sample_scenes,
    spatialize_clips,
    summarize_simulation,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Clip table -> scenes -> 4-channel shards -> metadata table and MLflow metrics."""
    return Pipeline(
        [
            Node(
                prepare_corpus,
                inputs=["params:corpus", "params:audio"],
                outputs=["clip_table", "corpus_report"],
                name="prepare_corpus",
            ),
            Node(
                sample_scenes,
                inputs=["clip_table", "params:simulation", "params:array"],
                outputs="scenes",
                name="sample_scenes",
            ),
            Node(
                spatialize_clips,
                inputs=["clip_table", "scenes", "params:simulation", "params:audio", "params:execution"],
                outputs="spatial_audio",
                name="spatialize_clips",
            ),
            Node(
                summarize_simulation,
                inputs=["spatial_audio", "corpus_report", "params:audio"],
                outputs=["spatial_metadata", "simulation_metrics"],
                name="summarize_simulation",
            ),
        ]
    )
