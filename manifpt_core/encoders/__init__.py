"""Encoders of the learned embedding spaces: ``sl`` (supervised) and ``ssl`` (Barlow Twins).

With a local ResNet-50 weights file (``encoders.<space>.weights``) an encoder is
torchvision's ResNet-50 and its 2048-d penultimate features, as in the ManiFPT
paper; without one, a small ResNet is trained on the real reference images.
Typical use::

    encoder = build_encoder("ssl", EncoderSettings(), images, labels=None, seed=0)
    vectors = encoder.embed(images)            # float32 (N, encoder.feature_dim)
    save_encoder(encoder, path); encoder = load_encoder(path)
"""

from manifpt_core.encoders.barlow import augment, barlow_twins_loss
from manifpt_core.encoders.encoder import (
    Encoder,
    build_encoder,
    load_encoder,
    save_encoder,
)
from manifpt_core.encoders.preprocess import Preprocess
from manifpt_core.encoders.settings import EncoderSettings

__all__ = [
    "Encoder",
    "EncoderSettings",
    "Preprocess",
    "augment",
    "barlow_twins_loss",
    "build_encoder",
    "load_encoder",
    "save_encoder",
]
