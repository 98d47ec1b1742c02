"""``inference`` pipeline definition."""

from kedro.pipeline import Node, Pipeline

from mc_simclr.pipelines.inference.nodes import run_inference


def create_pipeline(**kwargs) -> Pipeline:
    """Fine-tuned model + a folder of recordings of the model's array -> per-window embeddings, classes, azimuths."""
    return Pipeline(
        [
            Node(
                run_inference,
                inputs=["seld_model", "params:inference", "params:array"],
                outputs="inference_results",
                name="run_inference",
            )
        ]
    )
