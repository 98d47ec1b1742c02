"""``seld`` pipeline definition."""

from kedro.pipeline import Node, Pipeline

from mc_simclr.pipelines.seld.nodes import report_seld, run_seld


def create_pipeline(**kwargs) -> Pipeline:
    """Pretrained encoder + recordings in the DCASE layout (seld.root) -> rows -> tables, figure, metrics."""
    return Pipeline(
        [
            Node(run_seld, inputs=["encoder", "params:seld"], outputs="seld_study", name="run_seld"),
            Node(
                report_seld,
                inputs="seld_study",
                outputs=[
                    "seld_results",
                    "seld_summary",
                    "seld_summary_markdown",
                    "seld_per_class",
                    "seld_report",
                    "seld_tracks_plot",
                    "seld_metrics",
                ],
                name="report_seld",
            ),
        ]
    )
