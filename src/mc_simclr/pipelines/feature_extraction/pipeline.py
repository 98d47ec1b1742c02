"""``feature_extraction`` pipeline definition."""

from kedro.pipeline import Node, Pipeline

from mc_simclr.pipelines.feature_extraction.nodes import class_names, extract_features, summarize_features


def create_pipeline(**kwargs) -> Pipeline:
    """Spatial audio -> class list -> Mel + GCC patches of the evaluation splits -> index."""
    return Pipeline(
        [
            Node(class_names, inputs="spatial_metadata", outputs="class_names", name="class_names"),
            Node(
                extract_features,
                inputs=[
                    "spatial_audio",
                    "class_names",
                    "params:features",
                    "params:feature_extraction",
                    "params:audio",
                    "params:execution",
                ],
                outputs="feature_patches",
                name="extract_features",
            ),
            Node(
                summarize_features,
                inputs="feature_patches",
                outputs=["feature_index", "feature_metrics"],
                name="summarize_features",
            ),
        ]
    )
