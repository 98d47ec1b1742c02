"""``evaluation`` pipeline definition."""

from kedro.pipeline import Node, Pipeline

from mc_simclr.pipelines.evaluation.nodes import (
    build_evaluation_report,
    evaluate_pretrained,
    evaluate_random_init,
    export_seld_model,
    load_evaluation_inputs,
    log_mlflow_model,
    srp_phat_baseline,
    supervised_azimuth_ceiling,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Encoder + feature patches -> protocols for pretrained and random-init encoders, SRP-PHAT -> report."""
    return Pipeline(
        [
            Node(
                load_evaluation_inputs,
                inputs=["encoder", "feature_patches", "class_names", "params:evaluation"],
                outputs="evaluation_inputs",
                name="load_evaluation_inputs",
            ),
            Node(evaluate_pretrained, "evaluation_inputs", "pretrained_results", name="evaluate_pretrained"),
            Node(evaluate_random_init, "evaluation_inputs", "random_init_results", name="evaluate_random_init"),
            Node(
                supervised_azimuth_ceiling,
                "evaluation_inputs",
                "supervised_azimuth_results",
                name="supervised_azimuth_ceiling",
            ),
            Node(
                export_seld_model,
                inputs=["pretrained_results", "evaluation_inputs", "class_names"],
                outputs="seld_model",
                name="export_seld_model",
            ),
            Node(log_mlflow_model, inputs=["seld_model", "params:evaluation"], outputs=None, name="log_mlflow_model"),
            Node(
                srp_phat_baseline,
                inputs=["spatial_audio", "feature_index", "params:evaluation", "params:audio"],
                outputs="srp_phat_results",
                name="srp_phat_baseline",
            ),
            Node(
                build_evaluation_report,
                inputs=[
                    "pretrained_results",
                    "random_init_results",
                    "srp_phat_results",
                    "supervised_azimuth_results",
                    "evaluation_inputs",
                    "params:evaluation",
                ],
                outputs=[
                    "results_table",
                    "results_markdown",
                    "results_confirmation",
                    "results_batchnorm",
                    "results_breakdown",
                    "subset_results",
                    "subset_plot",
                    "embedding_plot",
                    "evaluation_metrics",
                ],
                name="build_report",
            ),
        ]
    )
