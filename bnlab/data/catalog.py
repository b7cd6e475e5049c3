"""What each dataset is: its name, class names and the files that make it up.

Kept apart from the readers and the search so that error messages, tests and the
search all quote the same file names.
"""

from __future__ import annotations

DATASETS: tuple[str, ...] = ("fashion_mnist", "mnist", "cifar10", "digits")

# How reports and figure titles name each dataset.
DISPLAY_NAMES: dict[str, str] = {
    "fashion_mnist": "Fashion-MNIST", "mnist": "MNIST", "cifar10": "CIFAR-10",
    "digits": "scikit-learn digits (8x8)",
}


# (channels, height, width) of each dataset's images.
INPUT_SHAPES: dict[str, tuple[int, int, int]] = {
    "fashion_mnist": (1, 28, 28), "mnist": (1, 28, 28), "cifar10": (3, 32, 32), "digits": (1, 8, 8),
}


# Number of classes of each dataset: chance accuracy is 1 / this (the splits are balanced).
NUM_CLASSES: dict[str, int] = {"fashion_mnist": 10, "mnist": 10, "cifar10": 10, "digits": 10}


def display_name(name: str) -> str:
    return DISPLAY_NAMES.get(name, name)

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
DIGIT_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)

# IDX files (MNIST and Fashion-MNIST share names); each may also carry ".gz".
IDX_FILES: dict[str, str] = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}

# CIFAR-10 "python version": a folder of pickles, or the tarball that holds it.
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_TARBALL = "cifar-10-python.tar.gz"
CIFAR_TRAIN_BATCHES: tuple[str, ...] = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_BATCH = "test_batch"
CIFAR_META = "batches.meta"  # optional: class names fall back to CIFAR10_CLASSES

# OS packages that install a dataset, and where (quoted in error messages).
APT_PACKAGES: dict[str, tuple[str, str]] = {
    "fashion_mnist": ("dataset-fashion-mnist", "/usr/share/datasets/fashion-mnist"),  # Debian
}

DIGITS_N_IMAGES = 1797  # images in scikit-learn's load_digits()
DIGITS_N_TEST = 360  # load_digits() has no official test split; we carve one this size

# Images of each dataset's training file (before the validation split) and test file:
# what the config is checked against before any job (bnlab.data.limits). The readers
# do not consult these; tests check them against the files.
TRAIN_IMAGES: dict[str, int] = {
    "fashion_mnist": 60000, "mnist": 60000, "cifar10": 50000, "digits": DIGITS_N_IMAGES - DIGITS_N_TEST,
}
TEST_IMAGES: dict[str, int] = {
    "fashion_mnist": 10000, "mnist": 10000, "cifar10": 10000, "digits": DIGITS_N_TEST,
}


def check_name(name: str) -> None:
    """Refuse an unknown dataset name with the list of known ones."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
