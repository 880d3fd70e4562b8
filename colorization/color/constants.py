"""Constants of both papers, each defined once with its source.

Import these; never retype 50, 100, 110, 0.38, ... elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LabNormalization:
    """How raw Lab is scaled for networks (richzhang/colorization ``colorizers/base_color.py``).

    L in [0, 100] enters as (L - l_center) / l_scale; the network's ab output is multiplied by ab_scale.
    """

    l_center: float = 50.0
    l_scale: float = 100.0
    ab_scale: float = 110.0


LAB_NORMALIZATION = LabNormalization()

# --- CIE Lab (sRGB primaries, D65 white, 2-degree observer), as scikit-image's rgb2lab/lab2rgb. ---
D65_WHITE_XYZ = (0.95047, 1.0, 1.08883)
XYZ_FROM_LINEAR_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)

# --- Zhang et al. 2016, Sec. 2.1-2.3 (and paper-facts.md for the released code). ---
AB_GRID_STEP = 10.0  # ab plane quantized on a grid of 10
SOFT_ENCODE_NEIGHBOURS = 5  # paper: 5 nearest bins (the authors' Caffe code used 10, issue #59)
SOFT_ENCODE_SIGMA = 5.0  # Gaussian kernel of the soft targets, and of the prior smoothing (issue #47)
PRIOR_UNIFORM_MIX = 0.5  # lambda of the rebalancing weights
ANNEALED_MEAN_TEMPERATURE = 0.38  # T of the annealed mean
COLOURLESS_AB_THRESHOLD = 5.0  # images whose max |ab| stays below this carry no colour ("non-grey mask")

# --- Larsson et al. 2016, Sec. 3.1-3.3 (and gustavla/autocolorize). ---
LARSSON_LAB_SIGMA = 25.0  # Lab axes binned at evenly spaced quantiles of N(0, 25^2)
LARSSON_MARGINAL_BINS = 32  # K per axis for marginal Lab histograms
LARSSON_JOINT_BINS = 16  # K x K grid for the joint Lab histogram
LARSSON_HUE_CHROMA_BINS = 32  # uniform bins on [0, 1] for hue and for chroma
LARSSON_HUE_WEIGHT = 5.0  # lambda_H: hue KL weighted by lambda_H * chroma
LARSSON_CHROMATIC_FADING_ETA = 0.03  # chroma scaled by min(|z| / eta, 1)
LARSSON_SAMPLED_PIXELS = 128  # hypercolumns sampled per training image
LARSSON_HYPERCOLUMN_UNITS = 1024  # Sec. 3.4: the hypercolumn feeds a fully connected layer of 1024 units
LARSSON_GREY_OFFSET = 0.4488  # network input = grey in [0, 1] minus this (train_vgg16.prototxt "take_mean")
LARSSON_DROPOUT = 0.5  # on fc6, fc7 and the hypercolumn layer (train_vgg16.prototxt)
LARSSON_DENSE_STRIDE = 4  # dense inference builds hypercolumns on the 1/4 grid, then upsamples (paper-facts.md)
# Solver of the released training (train/solver_vgg16.prototxt and train_vgg16.prototxt's lr_mult/decay_mult).
LARSSON_SGD_LR = 1e-3
LARSSON_SGD_MOMENTUM = 0.9
LARSSON_WEIGHT_DECAY = 5e-4
LARSSON_BIAS_LR_MULT = 2.0  # biases: lr_mult 2, decay_mult 0 (Caffe convention of the VGG prototxts)

# --- torchvision's ImageNet VGG-16 (VGG16_Weights.IMAGENET1K_V1.transforms()): RGB x in [0, 1] enters as
# (x - mean) / std per channel; the grey conv1_1 of Larsson's network is derived from it (models/larsson_vgg_init.py).
TORCHVISION_IMAGENET_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_IMAGENET_STD = (0.229, 0.224, 0.225)
