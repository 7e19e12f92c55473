"""Data sources: real and generated images as uint8 ``(N, C, H, W)`` numpy arrays.

- :mod:`.idx`: idx files and the Fashion-MNIST data set (Debian ``dataset-fashion-mnist``).
- :mod:`.folder`: folders of PNG/JPEG/WebP images.
- :mod:`.model_folders`: GM-CIFAR10-style benchmark layouts and folders of model folders (``models_path``);
  a folder that cannot be a model is reported and skipped.
- :mod:`.links`: symbolic links leaving a folder source or the models folder are refused unless
  ``follow_symlinks``.

Images keep their native channels (grayscale C=1, RGB C=3); any resize is an
explicit :class:`Resize` that can be recorded with ``Resize.to_dict()``.
"""

from manifpt_core.sources.folder import (
    BAD_IMAGE_POLICIES,
    IMAGE_SUFFIXES,
    RESIZE_FILTERS,
    BadImageError,
    FolderImages,
    Resize,
    SkippedFile,
    folder_content_hash,
    folder_labels,
    list_image_files,
    load_image_folder,
    observe_folder,
    read_image_folder,
)
from manifpt_core.sources.idx import (
    DEFAULT_FASHION_MNIST_DIR,
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_ENV,
    FASHION_MNIST_SPLITS,
    fashion_mnist_dir,
    load_fashion_mnist,
    read_idx,
)
from manifpt_core.sources.model_folders import (
    MODEL_NAME_PATTERN,
    ModelFolders,
    SkippedFolder,
    discover_benchmark,
    discover_models,
    scan_benchmark,
    scan_models,
)

__all__ = [
    "BAD_IMAGE_POLICIES",
    "DEFAULT_FASHION_MNIST_DIR",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_ENV",
    "FASHION_MNIST_SPLITS",
    "IMAGE_SUFFIXES",
    "MODEL_NAME_PATTERN",
    "RESIZE_FILTERS",
    "BadImageError",
    "FolderImages",
    "ModelFolders",
    "Resize",
    "SkippedFile",
    "SkippedFolder",
    "discover_benchmark",
    "discover_models",
    "fashion_mnist_dir",
    "folder_content_hash",
    "folder_labels",
    "list_image_files",
    "load_fashion_mnist",
    "load_image_folder",
    "observe_folder",
    "read_idx",
    "read_image_folder",
    "scan_benchmark",
    "scan_models",
]
