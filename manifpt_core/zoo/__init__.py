"""The generator zoo: small generative models trained on real images, one family per module.

Each model is described by a :class:`ModelCard` (family, the six design
factors of the ManiFPT paper, seed, training settings). A family trains on
uint8 images and samples uint8 images::

    card = ModelCard.from_dict({"name": "dcgan-s0", "family": "dcgan"})
    family = get_family(card.family)
    state = family.train(images, card)
    fakes = family.sample(state, card, images.shape[1:], n=1000, seed=0)

To add a family, write a module with a registered :class:`Family` subclass
(its networks, its :meth:`Family.training_step` and :meth:`Family.decode`;
training and sampling are the base class's) and import it below.
"""

from manifpt_core.zoo.cards import DESIGN_FACTORS, ModelCard, TrainSettings, design
from manifpt_core.zoo.registry import (
    Family,
    Step,
    TrainingRun,
    families,
    get_family,
    load_checkpoint,
    register_family,
    save_checkpoint,
)

# Imported for their registration side effect; each adds one family.
from manifpt_core.zoo import (  # noqa: E402,F401  isort: skip
    beta_vae, dcgan, ddpm, factorial, lsgan, realnvp, vae, wgan_gp,
)

__all__ = [
    "DESIGN_FACTORS",
    "Family",
    "ModelCard",
    "Step",
    "TrainSettings",
    "TrainingRun",
    "design",
    "families",
    "get_family",
    "load_checkpoint",
    "register_family",
    "save_checkpoint",
]
