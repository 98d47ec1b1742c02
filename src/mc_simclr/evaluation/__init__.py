"""Supervised evaluation protocols of the paper (section 4.3) on precomputed feature patches.

* Linear probing: the encoder is frozen; a linear class head (cross-entropy) and a linear azimuth
  head (mean squared error on (cos, sin), decoded with atan2) are trained separately on its
  embeddings. Embeddings are standardised with the training set's mean and deviation (an affine map
  a linear head could absorb; it only makes SGD's job well conditioned).
* Fine-tuning: both heads and the encoder train jointly; a *pretrained* encoder's gradients are
  scaled by ``encoder_grad_scale`` (0.1) so that it does not overfit the small labeled split, a
  random-init encoder trains at full rate (it is the supervised-from-scratch model).
* Subset fine-tuning: the same on class-balanced, seeded subsets of the labeled clips.
* k-NN: no training at all; each test patch takes the majority class and the mean azimuth
  direction of its ``knn_k`` nearest training patches (cosine similarity of standardised
  embeddings; the training patches under every array symmetry, with their mapped azimuths).
  It reads what the embedding's geometry holds, with no head that could learn a detour.

BatchNorm of a frozen encoder (``evaluation.batchnorm``): ``keep`` probes the encoder with the
running statistics it carries (a random encoder's initial ones, a pretrained encoder's learned on
augmented views); ``recalibrate`` re-estimates them on the labeled split first (forward passes
without gradients or labels; each layer gets the exact mean and variance of its input over all
labeled patches), for every encoder alike, as self-supervised benchmarks do for random-init
baselines. It applies to the linear probe, k-NN and the embedding
plot; the linear probe is also run with the other choice, so that both are reported.
Fine-tuning trains the statistics anyway.

ChannelSwap is the only augmentation: one random array symmetry per training patch, applied to
the features (:class:`~mc_simclr.augment.FeatureChannelSwap`) and to the direction label
(:meth:`~mc_simclr.acoustics.symmetry.ArraySymmetries.map_directions`). Model selection uses the
validation split: the epoch with the best validation score is kept (accuracy for the class head,
error for the azimuth head, their sum of losses for fine-tuning). Results are per clip: the
predictions of a clip's patches are averaged (class probabilities; azimuth unit vectors).

One module per job: :mod:`~mc_simclr.evaluation.splits` (the feature patches of each split),
:mod:`~mc_simclr.evaluation.supervised` (settings, predictions and scores every protocol shares),
:mod:`~mc_simclr.evaluation.batchnorm`, :mod:`~mc_simclr.evaluation.linear_probe`,
:mod:`~mc_simclr.evaluation.knn`, :mod:`~mc_simclr.evaluation.fine_tuning` and
:mod:`~mc_simclr.evaluation.protocols` (all of them for one encoder). Their public names are
importable from this package.
"""

from __future__ import annotations

from mc_simclr.evaluation.batchnorm import (
    BATCHNORM_MODES,
    RECALIBRATION_CHUNK,
    batchnorm_mode,
    frozen_encoder,
    recalibrate_batchnorm,
)
from mc_simclr.evaluation.fine_tuning import (
    SUBSET_UNITS,
    FineTuned,
    class_balanced_subset,
    fine_tune,
    parse_subsets,
    scale_gradients,
)
from mc_simclr.evaluation.knn import KNN_BLOCK_VALUES, knn_predict
from mc_simclr.evaluation.linear_probe import linear_probe, standardised_embeddings, train_probe_heads
from mc_simclr.evaluation.protocols import (
    PROTOCOLS,
    EvaluationInputs,
    ProtocolResults,
    azimuth_ceiling,
    evaluate_encoder,
    prepare_evaluation,
    probe_key,
    random_init_like,
    run_protocols,
    supervised_azimuth,
)
from mc_simclr.evaluation.splits import CONFIRMATION, REQUIRED_SPLITS, Patches, Split, load_splits, report_splits, take
from mc_simclr.evaluation.supervised import (
    Predictions,
    SupervisedConfig,
    clip_predictions,
    direction_selection_metric,
    direction_targets,
    embed,
    embed_symmetries,
    sample_symmetries,
    sgd_schedule,
    shuffled_batches,
    split_scores,
)

__all__ = [
    "BATCHNORM_MODES",
    "CONFIRMATION",
    "EvaluationInputs",
    "FineTuned",
    "KNN_BLOCK_VALUES",
    "PROTOCOLS",
    "Patches",
    "Predictions",
    "ProtocolResults",
    "RECALIBRATION_CHUNK",
    "REQUIRED_SPLITS",
    "Split",
    "SupervisedConfig",
    "azimuth_ceiling",
    "batchnorm_mode",
    "class_balanced_subset",
    "parse_subsets",
    "SUBSET_UNITS",
    "clip_predictions",
    "direction_selection_metric",
    "direction_targets",
    "embed",
    "embed_symmetries",
    "evaluate_encoder",
    "fine_tune",
    "frozen_encoder",
    "knn_predict",
    "linear_probe",
    "load_splits",
    "prepare_evaluation",
    "probe_key",
    "random_init_like",
    "recalibrate_batchnorm",
    "report_splits",
    "run_protocols",
    "sample_symmetries",
    "scale_gradients",
    "sgd_schedule",
    "shuffled_batches",
    "split_scores",
    "standardised_embeddings",
    "supervised_azimuth",
    "take",
    "train_probe_heads",
]
