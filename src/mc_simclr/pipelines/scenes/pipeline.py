"""``scenes`` pipeline definition."""

from kedro.pipeline import Node, Pipeline

from mc_simclr.pipelines import data_simulation
from mc_simclr.pipelines.scenes.nodes import plot_scene_tracks, synthesize_scenes


def create_pipeline(**kwargs) -> Pipeline:
    """Clip table -> recordings in the DCASE layout (scenes.root) -> their table, report and a figure."""
    corpus = data_simulation.create_pipeline().only_nodes("prepare_corpus")
    return corpus + Pipeline(
        [
            Node(
                synthesize_scenes,
                inputs=["clip_table", "params:scenes", "params:simulation", "params:array", "params:audio"],
                outputs=["scene_recordings", "scene_report", "scene_metrics"],
                name="synthesize_scenes",
            ),
            Node(
                plot_scene_tracks,
                inputs=["scene_recordings", "scene_report"],
                outputs="scene_tracks_plot",
                name="plot_scene_tracks",
            ),
        ]
    )
