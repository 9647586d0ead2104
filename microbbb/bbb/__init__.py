"""Bayes by Backprop on the engine (Blundell et al. 2015, "Weight Uncertainty in Neural
Networks"): Bayesian layers and networks, priors, likelihoods, the loss
f(w, theta) = log q(w | theta) - log P(w) - log P(D | w), training, prediction, pruning by
signal-to-noise ratio, what looks wrong with a run (``diagnose``), save/load, and the same
gradients derived by hand (``by_hand``); three gradient estimators (``estimators``) and their
variance (``gradient_variance``); a learner's own hand-derived gradients marked term by
term (``check_gradients``).
"""

from . import by_hand, named
from .diagnose import Diagnosis, Finding, diagnose
from .io import ModelFileError, save_checkpoint
from .layers import BayesianLinear, BayesianMLP, BBBLoss, LossData, Noise
from .likelihoods import (
    Bernoulli,
    Categorical,
    ClassificationPrediction,
    Gaussian,
    RegressionPrediction,
)
from .marking import GradientFinding, GradientReport, check_gradients
from .priors import GaussianPrior, ScaleMixturePrior
from .program import LossProgram
from .pruning import prune, pruned_fraction, snr
from .train import History, TrainingDiverged, fit, minibatch_weights
from .variance import GradientVariance, Setting, gradient_variance


def to_torch(model: BayesianMLP):  # noqa: ANN201 (torch is not imported here)
    """The same model as a ``torch.nn.Module`` (see ``microbbb.bbb.torch_bridge``).

    torch is imported only when this is called.
    """
    from .torch_bridge import to_torch as convert

    return convert(model)


__all__ = [
    "BBBLoss",
    "BayesianLinear",
    "BayesianMLP",
    "Bernoulli",
    "Categorical",
    "ClassificationPrediction",
    "Diagnosis",
    "Finding",
    "Gaussian",
    "GradientFinding",
    "GradientReport",
    "GaussianPrior",
    "GradientVariance",
    "History",
    "LossData",
    "LossProgram",
    "ModelFileError",
    "Noise",
    "RegressionPrediction",
    "ScaleMixturePrior",
    "Setting",
    "TrainingDiverged",
    "by_hand",
    "check_gradients",
    "diagnose",
    "fit",
    "gradient_variance",
    "minibatch_weights",
    "named",
    "prune",
    "pruned_fraction",
    "save_checkpoint",
    "snr",
    "to_torch",
]
