"""Settings of the baselines: which run, and every parameter their papers leave to the implementer."""

from __future__ import annotations

from dataclasses import dataclass

from manifpt_core.errors import InputError
from manifpt_core.settings_loader import positive, setting

# name -> (report label, classifier)
CATALOGUE: dict[str, tuple[str, str]] = {
    "mccloskey": ("McCloskey & Albright: saturation histograms", "linear-svm"),
    "nataraj": ("Nataraj et al.: co-occurrence matrices", "cnn"),
    "durall-lr": ("Durall et al.: azimuthal spectrum", "logistic"),
    "durall-svm": ("Durall et al.: azimuthal spectrum", "linear-svm"),
    "dzanic": ("Dzanic et al.: spectral decay", "knn"),
    "raw-blurjpeg": ("raw-image CNN, blur + JPEG augmentation", "cnn"),
}

# The settings each baseline reads (short name -> field): only these enter its fingerprint.
PARAMETERS: dict[str, dict[str, str]] = {
    "mccloskey": {"under": "mccloskey_under", "over": "mccloskey_over", "bins": "mccloskey_bins", "c": "mccloskey_c"},
    "nataraj": {"levels": "nataraj_levels"},
    "durall-lr": {"c": "durall_c"},
    "durall-svm": {"c": "durall_c"},
    "dzanic": {"fraction": "dzanic_fraction", "smooth": "dzanic_smooth", "k": "dzanic_k"},
    "raw-blurjpeg": {"blur_prob": "blur_prob", "blur_sigma_max": "blur_sigma_max", "jpeg_prob": "jpeg_prob",
                     "jpeg_quality_min": "jpeg_quality_min"},
}


@dataclass(frozen=True)
class BaselineSettings:
    """``baselines.*`` keys (docs/configuration.md; the choices are argued in docs/decisions.md)."""

    methods: tuple[str, ...] = tuple(CATALOGUE)
    mccloskey_under: int = setting(0, ge=0, le=255)  # a pixel value <= this is under-exposed
    mccloskey_over: int = setting(255, ge=0, le=255)  # a pixel value >= this is saturated
    mccloskey_bins: int = setting(16, ge=1, le=256)  # intensity histogram bins per channel beside the two counts
    mccloskey_c: float = positive(1.0)  # inverse regularization of McCloskey's linear SVM
    nataraj_levels: int = setting(256, ge=2, le=256)  # grey levels of the co-occurrence matrix (the paper's 256)
    durall_c: float = positive(1.0)  # inverse regularization of the logistic regression and the linear SVM
    # The fitted high-frequency part: this top fraction of radii 1..Nyquist.
    dzanic_fraction: float = setting(0.5, gt=0, le=1)
    dzanic_smooth: int = setting(3, ge=1)  # moving-average window (bins) over the log reduced spectrum before the fit
    dzanic_k: int = setting(5, ge=1)  # neighbours of the k-NN classifier
    blur_prob: float = setting(0.5, ge=0, le=1)
    blur_sigma_max: float = setting(3.0, ge=0)
    jpeg_prob: float = setting(0.5, ge=0, le=1)
    jpeg_quality_min: int = setting(30, ge=1, le=100)

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", tuple(self.methods))
        unknown = [m for m in self.methods if m not in CATALOGUE]
        if unknown or len(set(self.methods)) != len(self.methods):
            raise InputError(f"baselines.methods = {list(self.methods)}: list distinct names among {list(CATALOGUE)}")
        checks = {
            "mccloskey_under": 0 <= self.mccloskey_under < self.mccloskey_over <= 255,
            "mccloskey_bins": 1 <= self.mccloskey_bins <= 256,
            "nataraj_levels": 2 <= self.nataraj_levels <= 256,
            "durall_c": self.durall_c > 0,
            "mccloskey_c": self.mccloskey_c > 0,
            "dzanic_fraction": 0 < self.dzanic_fraction <= 1,
            "dzanic_smooth": self.dzanic_smooth >= 1,
            "dzanic_k": self.dzanic_k >= 1,
            "blur_prob": 0 <= self.blur_prob <= 1 and self.blur_sigma_max >= 0,
            "jpeg_prob": 0 <= self.jpeg_prob <= 1 and 1 <= self.jpeg_quality_min <= 100,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise InputError(f"baselines: invalid value(s) for {bad}; see docs/configuration.md for their ranges")

    def params(self, name: str) -> dict[str, object]:
        """The settings baseline ``name`` reads, by short name."""
        return {short: getattr(self, field) for short, field in PARAMETERS[name].items()}

    def label(self, name: str) -> str:
        """The report's name of a baseline (its classifier is in the network column)."""
        return CATALOGUE[name][0]

    def classifier(self, name: str) -> str:
        return CATALOGUE[name][1]
