"""``pretraining`` pipeline definition."""

from kedro.pipeline import Node, Pipeline

from mc_simclr.pipelines.pretraining.nodes import pretrain_encoder

#: Inputs of the pretraining node; the ablations pipeline's per-variant pretraining takes the same.
PRETRAINING_INPUTS = [
    "spatial_audio",
    "params:features",
    "params:pretraining",
    "params:encoder",
    "params:augmentations",
    "params:audio",
]


def create_pipeline(**kwargs) -> Pipeline:
    """Unlabeled spatial audio -> MC-SimCLR encoder (+ per-epoch loss, lr, throughput in MLflow)."""
    return Pipeline(
        [
            Node(
                pretrain_encoder,
                inputs=PRETRAINING_INPUTS,
                outputs=["encoder", "pretraining_metrics"],
                name="pretrain_encoder",
            )
        ]
    )
