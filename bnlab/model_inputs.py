"""The smallest square image each model takes, known without torch, so that a config pairing a model
with a dataset of smaller images is refused when it is read (bnlab.data.limits), not by a job's traceback.

The numbers are what bnlab.models.shapes finds by a dry forward on the meta device (the pools and
kernels of each architecture); tests/test_models.py checks them against it for every registered model.
"""

from __future__ import annotations

# every registered model -> smallest side s such that an s x s input passes its convolutions and pools
# (1: any size; the MLP flattens, ResNet and VGG-A keep a map of at least 1x1)
MIN_INPUT_SIDE: dict[str, int] = {"cnn": 8, "cnn2": 4, "lenet5": 12, "minigooglenet": 7, "mlp": 1, "resnet": 1,
                                  "vgg_a": 1}


def min_input_side(model: str) -> int:
    return MIN_INPUT_SIDE[model]
