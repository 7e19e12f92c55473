"""Attribution: train a network (a small ResNet for image-shaped artifacts, an MLP for vectors) to name
the generative model behind an artifact.

Typical use::

    result = fit_attributor(x_train, y_train, x_val, y_val, num_classes, FitSettings(), seed=0)
    labels, feats = predict(result, x_test, return_features=True)
    accuracy(y_test, labels); confusion_matrix(y_test, labels, num_classes)
    save_attributor(result, "attributor.pt"); result = load_attributor("attributor.pt")
"""

from manifpt_core.attribution.metrics import accuracy, confusion_matrix
from manifpt_core.attribution.networks import MLP, SmallResNet
from manifpt_core.attribution.persistence import load_attributor, save_attributor
from manifpt_core.attribution.result import FitResult, FitSettings
from manifpt_core.attribution.train import (
    Predictor,
    fit_attributor,
    predict,
    predict_logits,
    predict_proba,
    softmax,
)

__all__ = [
    "FitResult",
    "FitSettings",
    "MLP",
    "Predictor",
    "SmallResNet",
    "accuracy",
    "confusion_matrix",
    "fit_attributor",
    "load_attributor",
    "predict",
    "predict_logits",
    "predict_proba",
    "softmax",
    "save_attributor",
]
