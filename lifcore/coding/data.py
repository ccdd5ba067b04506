"""Natural colour image patches (seed 000, "300x300 color model": D = 10 x 10 x 3 = 300).

Patches are cut from the colour photographs that ship inside scikit-image (no download),
from any folder of images, or from the deck's own scenes, the Kyoto Natural Image Dataset
(Doi et al. 2003; 62 scenes; `eizaburo-doi/kyoto_natim`): its MATLAB files hold the L, M and
S cone responses ``OL``, ``OM``, ``OS``, read here as the three channels, as the deck's
`data.py` read them. ``images=("kyoto",)`` names them wherever a copy is found
(`kyoto_folder`): the folder ``$LIFCORE_KYOTO``, else ``data/kyoto_natim`` beside the project
(the .mat files), else ``shared/data/kyoto_natim_thumbs`` inside or beside it (the dataset's
256 x 200 RGB thumbnails, the copy this project's machines have). Everything is deterministic for a seed. A patch is
flattened row-major with the colour last, ``patch[y, x, c] -> vector[(y * size + x) * 3 + c]``.

The Gaussian bound on the patch entropy, ``H_X = 1/2 logdet(2 pi e C_x)`` (nats), is the
ceiling of the mutual information a code of these patches can carry (DESIGN section 5).

The deck's pipeline (its `data.py`, DECK-CODE.md "Data") is a choice of options here:
``centering="image"`` normalises every image to zero mean and unit standard deviation
(over all its pixels and colours) before patches are cut, with no further centring or
scaling; ``mask="circular"`` multiplies every patch by the deck's soft circular window;
``size=18`` is the deck's patch. Where no copy of the Kyoto scenes is at hand,
scikit-image's RGB photographs, or a user's folder, stand in. The deck
lays a patch out colour-first (``[3, size, size]``); the layout is a permutation and
changes no number but the order of the dimensions.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import memory
from ..arguments import real

# scikit-image's natural colour photographs (shipped with the package, read offline).
TRAIN_IMAGES = ("astronaut", "coffee", "rocket", "motorcycle")
HELD_OUT_IMAGES = ("chelsea",)
CENTERING = ("none", "patch", "dataset", "image")
MASKS = ("none", "circular")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".mat")
CONE_CHANNELS = ("OL", "OM", "OS")  # a Kyoto .mat file's L, M and S cone responses, in this order
KYOTO = "kyoto"  # the name of the deck's scenes in `images`
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# where `kyoto_folder` looks, after $LIFCORE_KYOTO: the .mat files, then the thumbnails this project's machines carry
KYOTO_PLACES = (PROJECT_ROOT / "data" / "kyoto_natim", PROJECT_ROOT / "shared" / "data" / "kyoto_natim_thumbs",
                PROJECT_ROOT.parent / "shared" / "data" / "kyoto_natim_thumbs")
# scikit-image's colour photographs, by the name `load_image` accepts
PHOTOGRAPHS = ("astronaut", "chelsea", "coffee", "motorcycle", "rocket", "immunohistochemistry", "retina", "logo")
GREYSCALE = ("camera", "moon", "coins", "page", "text", "horse", "clock", "brick", "grass", "gravel")  # refused, by name


def kyoto_folder() -> Path | None:
    """The folder of the Kyoto scenes this machine has (module docstring), or None. ``$LIFCORE_KYOTO``
    set to a folder that holds no image is an error, not a silent fall-back."""
    chosen = os.environ.get("LIFCORE_KYOTO")
    if chosen:
        images_in_folder(chosen)  # raises, naming the folder, when it holds no image
        return Path(chosen).expanduser().resolve()
    for place in KYOTO_PLACES:
        try:
            images_in_folder(place)
        except ValueError:  # no such folder, or no image in it: the next place
            continue
        return place.resolve()
    return None


def load_cone_responses(path: Path) -> np.ndarray:
    """A Kyoto .mat file's cone responses ``[H, W, 3]`` (L, M, S; float64, as stored)."""
    from scipy.io import loadmat

    try:
        content = loadmat(path, variable_names=list(CONE_CHANNELS))
    except Exception as err:  # scipy raises several kinds for a file that is not MATLAB's
        raise ValueError(f"images: {str(path)!r} is not a readable MATLAB file ({err})") from None
    missing = [name for name in CONE_CHANNELS if name not in content]
    if missing:
        raise ValueError(f"images: {str(path)!r} has no {', '.join(missing)}: a Kyoto image holds the cone responses "
                         f"{', '.join(CONE_CHANNELS)}")
    channels = [np.asarray(content[name], dtype=np.float64) for name in CONE_CHANNELS]
    if any(c.ndim != 2 or c.shape != channels[0].shape for c in channels):
        raise ValueError(f"images: {str(path)!r}: {', '.join(CONE_CHANNELS)} must be 2-D arrays of one shape; got "
                         + ", ".join(str(c.shape) for c in channels))
    return np.stack(channels, -1)


def load_image(name: str) -> np.ndarray:
    """A colour image ``[H, W, 3]`` as float64: RGB in [0, 1] for a scikit-image name or an image
    file, the L, M, S cone responses as stored for a Kyoto .mat file."""
    import skimage.data
    import skimage.io

    name = str(name)
    path = Path(name).expanduser()
    if path.suffix.lower() == ".mat" and path.is_file():
        return load_cone_responses(path)
    if name == "motorcycle":
        image = skimage.data.stereo_motorcycle()[0]
    elif path.suffix.lower() in IMAGE_SUFFIXES or "/" in name or path.exists():
        if path.is_dir():
            raise ValueError(f"images: {name!r} is a folder; pass a folder alone, as images=({name!r},)")
        if not path.exists():
            raise ValueError(f"images: {name!r} does not exist (an image file, a folder of images, or one of "
                             f"scikit-image's photographs such as {', '.join(TRAIN_IMAGES + HELD_OUT_IMAGES)})")
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(f"images: {name!r} is not an image file; allowed suffixes: {', '.join(IMAGE_SUFFIXES)}")
        try:
            image = skimage.io.imread(path)
        except Exception as err:  # noqa: BLE001 (each image library raises its own kinds; a bad file is one case)
            raise ValueError(f"images: {name!r} cannot be read as an image: the file is damaged or not the kind its "
                             f"suffix says ({type(err).__name__})") from None
    elif name in PHOTOGRAPHS + GREYSCALE:
        image = getattr(skimage.data, name)()
    else:
        raise ValueError(f"images: {name!r} is neither a file nor a folder, nor one of scikit-image's colour photographs "
                         f"({', '.join(PHOTOGRAPHS)})")
    image = np.asarray(image)
    # a colour model: a greyscale image would give three identical channels and a singular C_x
    if image.ndim != 3 or image.shape[-1] < 3 or (np.array_equal(image[..., 0], image[..., 1])
                                                 and np.array_equal(image[..., 1], image[..., 2])):
        raise ValueError(f"images: {name!r} is greyscale (shape {image.shape}); the model codes colour patches and "
                         "needs RGB images")
    image = image[..., :3]  # drop alpha
    scale = 255.0 if image.dtype == np.uint8 else (65535.0 if image.dtype == np.uint16 else 1.0)
    return image.astype(np.float64) / scale


def images_in_folder(folder: str | Path) -> list[str]:
    """The image files of `folder` (by suffix, sorted), as resolved paths."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ValueError(f"images: folder {str(folder)!r} does not exist")
    paths = sorted(str(p.resolve()) for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"folder {str(folder)!r} holds no image ({', '.join(IMAGE_SUFFIXES)})")
    return paths


def circular_mask(size: int) -> np.ndarray:
    """The deck's soft circular window ``[size, size]``: 1 inside radius ``size/2 - 1/2`` of the
    centre, falling linearly to 0 over one pixel outside it (floored at 1e-4)::

        mask(y, x) = clip(r - sqrt(y^2 + x^2) + 1, 1e-4, 1),   r = size/2 - 1/2,  y, x in [-r, r]
    """
    radius = size / 2 - 0.5
    coords = np.linspace(-radius, radius, size)
    distance = np.sqrt(coords[:, None] ** 2 + coords[None, :] ** 2)
    return np.clip(radius - distance + 1.0, 1e-4, 1.0)


def normalize_image(image: np.ndarray) -> np.ndarray:
    """Zero mean and unit standard deviation over all pixels and colours of one image (the deck's)."""
    std = image.std()
    if not std > 0:
        raise ValueError("an image is constant: it cannot be normalised to unit variance")
    return (image - image.mean()) / std


def resample_image(image: np.ndarray, scale: float) -> np.ndarray:
    """`image` ``[H, W, C]`` resampled to ``round(H scale) x round(W scale)`` by bicubic convolution (Keys'
    kernel, a = -0.75; border pixels repeated), each output pixel centre mapped to the input at
    ``(i + 1/2) H / H_out - 1/2``: ``torch.nn.functional.interpolate(mode="bicubic", align_corners=False)``.
    ``scale=2.5`` takes a Kyoto thumbnail (256 x 200) to the dataset's own size (640 x 500): a pixel of
    the result spans a pixel of the deck's images, with none of the detail finer than the thumbnail's."""
    scale = real("image_scale", scale)
    if scale == 1:
        return image
    height, width = (max(1, round(n * scale)) for n in image.shape[:2])
    x = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
    out = torch.nn.functional.interpolate(x, size=(height, width), mode="bicubic", align_corners=False)
    return out[0].numpy().transpose(1, 2, 0)


def add_image_noise(image: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """`image` plus white Gaussian noise of standard deviation ``noise * image.std()`` on every pixel and
    colour: a noise floor under the spectrum (the Kyoto .mat files' cone responses carry detail and noise
    finer than their 2.5x smaller thumbnails keep; issue 32 calibrates it to the deck's H_X)."""
    noise = real("image_noise", noise, strict=False)
    if noise == 0:
        return image
    return image + noise * image.std() * rng.standard_normal(image.shape)


def sample_patches(images: list[np.ndarray], count: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """`count` random ``size x size`` RGB patches, flattened to ``[count, size*size*3]``, images drawn uniformly."""
    which = rng.integers(len(images), size=count)
    patches = np.empty((count, size * size * 3))
    for k, i in enumerate(which):
        image = images[i]
        y = rng.integers(image.shape[0] - size + 1)
        x = rng.integers(image.shape[1] - size + 1)
        patches[k] = image[y:y + size, x:x + size].reshape(-1)
    return patches


def check_memory(count: int, dim: int) -> None:
    """Refuse, before any work, patch sets that cannot fit: cutting holds ``count x dim`` float64
    values about three times over (cut, centred, converted)."""
    memory.require(3 * 8 * count * dim, f"cutting {count} patches of dimension {dim}",
                   "the patch size (size, patch_size) or the number of patches (n_train, n_patches)")


@dataclass
class PatchDataset:
    """Training and held-out patches, already preprocessed, as float tensors ``[n, D]``.

    Preprocessing: `centering` "dataset" (subtract the training mean of each pixel and
    colour, the default), "patch" (subtract each patch's own mean) or "none"; then a
    global scale so that the training patches have unit variance per dimension on
    average (``scale=True``). ``centering="image"`` is the deck's: every image is
    normalised on its own before cutting, and nothing is subtracted or scaled after.
    No whitening: the code has to find the structure itself.
    """

    train: torch.Tensor
    test: torch.Tensor
    size: int
    mean: torch.Tensor
    scale: float

    @property
    def dim(self) -> int:
        return self.train.shape[1]

    def covariance(self) -> torch.Tensor:
        """C_x of the training patches (float64, unbiased)."""
        x = self.train.double()
        x = x - x.mean(0)
        return x.t() @ x / (x.shape[0] - 1)

    def batch(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        index = torch.randint(self.train.shape[0], (batch_size,), generator=generator, device="cpu")
        return self.train[index]


def resolve_images(images=None, held_out=None) -> tuple[list[str], list[str]]:
    """The training and held-out image names of `images` (as `natural_patches` takes it), files as
    resolved paths: ``None`` or ``()`` are the default photographs (`TRAIN_IMAGES`, `HELD_OUT_IMAGES`);
    ``"kyoto"`` (alone or as a 1-tuple) the Kyoto scenes of `kyoto_folder`; a folder (alone or as a
    1-tuple) its images, the last in sorted order held out unless `held_out` is given (then those
    are held out and the folder's others train); otherwise a list of scikit-image names and files."""
    if isinstance(images, (list, tuple)) and len(images) == 1 and (
            str(images[0]) == KYOTO or Path(str(images[0])).expanduser().is_dir()):
        images = images[0]
    if isinstance(images, (str, Path)) and str(images) == KYOTO:
        found = kyoto_folder()
        if found is None:
            raise ValueError(f"images: {KYOTO!r} names the Kyoto scenes, and none was found: set LIFCORE_KYOTO to a "
                             f"folder of them or put them in {KYOTO_PLACES[0]}")
        images = found
    if isinstance(images, (str, Path)) and Path(images).expanduser().is_dir():
        paths = images_in_folder(images)
        if held_out is None:
            if len(paths) < 2:
                raise ValueError(f"images={str(images)!r}: a folder needs two images or more (one is held out)")
            paths, held_out = paths[:-1], paths[-1:]
        else:
            kept = {str(Path(str(name)).expanduser().resolve()) for name in held_out}
            paths = [path for path in paths if path not in kept]
        images = paths
    elif isinstance(images, (str, Path)):
        images = [images]

    def resolved(name) -> str:
        path = Path(str(name)).expanduser()
        return str(path.resolve()) if path.is_file() else str(name)

    train = [resolved(name) for name in (images or TRAIN_IMAGES)]
    test = [resolved(name) for name in (held_out if held_out is not None else HELD_OUT_IMAGES)]
    return train, test


def natural_patches(size: int = 10, n_train: int = 50_000, n_test: int = 10_000, seed: int = 0,
                    images: list[str] | tuple[str, ...] | str | None = None, held_out: list[str] | None = None,
                    centering: str = "dataset", scale: bool = True, mask: str = "none",
                    dtype=torch.float32, image_scale: float = 1.0, image_noise: float = 0.0) -> PatchDataset:
    """Cut the patch sets. `images` is a list of scikit-image names or files, a folder, or
    ``"kyoto"`` (`resolve_images` says which images train and which are held out).
    `mask` "circular" multiplies every patch by `circular_mask` (the deck's). `image_scale`
    resamples every image first (`resample_image`); `image_noise` then adds white Gaussian noise of
    that standard deviation, in units of each image's own (`add_image_noise`)."""
    image_scale, image_noise = real("image_scale", image_scale), real("image_noise", image_noise, strict=False)
    if centering not in CENTERING:
        raise ValueError(f"centering={centering!r} is unknown; allowed: {', '.join(map(repr, CENTERING))}")
    if mask not in MASKS:
        raise ValueError(f"mask={mask!r} is unknown; allowed: {', '.join(map(repr, MASKS))}")
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size={size!r} must be a positive integer (patch side in pixels)")
    train_names, test_names = resolve_images(images, held_out)
    shared = sorted(set(train_names) & set(test_names))
    if shared:
        raise ValueError(f"held_out={test_names!r} shares {shared} with the training images: held-out patches "
                         "must come from images the training never sees")
    rng = np.random.default_rng(seed)
    prepare = normalize_image if centering == "image" else (lambda image: image)
    loaded = {name: load_image(name) for name in train_names + test_names}
    if image_scale != 1:
        pixels = sum(round(im.shape[0] * image_scale) * round(im.shape[1] * image_scale) for im in loaded.values())
        memory.require(3 * 8 * 3 * pixels, f"the images resampled by image_scale={image_scale:g}", "image_scale")
        loaded = {name: resample_image(image, image_scale) for name, image in loaded.items()}
    if image_noise > 0:  # one generator per image, from the seed and the image's place among the training and
        #                    held-out images: the same noise every time for the same list (another list, other noise)
        loaded = {name: add_image_noise(image, image_noise, np.random.default_rng([seed, k]))
                  for k, (name, image) in enumerate(loaded.items())}
    small = {name: image.shape[:2] for name, image in loaded.items() if min(image.shape[:2]) < size}
    if small:
        raise ValueError(f"size={size} (patch_size): patches of {size} x {size} pixels do not fit in "
                         + ", ".join(f"{name!r} ({h} x {w})" for name, (h, w) in small.items())
                         + "; use a smaller patch size or larger images")
    check_memory(n_train + n_test, 3 * size * size)
    train = sample_patches([prepare(loaded[n]) for n in train_names], n_train, size, rng)
    test = sample_patches([prepare(loaded[n]) for n in test_names], n_test, size, rng)
    if mask == "circular":
        window = np.repeat(circular_mask(size).reshape(-1), 3)  # the layout (y, x, c): one value per pixel, all colours
        train *= window
        test *= window
    if centering == "patch":
        train -= train.mean(1, keepdims=True)
        test -= test.mean(1, keepdims=True)
    mean = train.mean(0) if centering == "dataset" else np.zeros(train.shape[1])
    train, test = train - mean, test - mean
    factor = 1.0 / train.std() if scale and centering != "image" else 1.0
    return PatchDataset(torch.as_tensor(train * factor, dtype=dtype), torch.as_tensor(test * factor, dtype=dtype),
                        size, torch.as_tensor(mean, dtype=dtype), float(factor))


def gaussian_entropy(covariance: torch.Tensor) -> torch.Tensor:
    """``H = 1/2 logdet(2 pi e C)`` in nats: the entropy of a Gaussian, the maximum for that covariance."""
    d = covariance.shape[-1]
    return 0.5 * (d * math.log(2 * math.pi * math.e) + torch.linalg.slogdet(covariance)[1])


def deck_entropy_offset_bits(patch_size: int, channels: int = 3) -> float:
    """How far the deck's printed H_X lies from `gaussian_entropy` (in bits) for colour patches.

    The deck's `train.py` computes ``H_X = sum log2 diag chol(C_x) + D/2 log2(2 pi e)`` with
    ``D = kernel_size^2`` (its `model.D`, the pixels of one colour), while ``C_x`` has
    ``channels * kernel_size^2`` dimensions: the constant misses
    ``(channels - 1) kernel_size^2 / 2 log2(2 pi e)`` bits (1327 bits for 18 x 18 x 3). The
    deck's `terms/MI` (``H_X + I``) carries the same offset. Returns that offset (negative).
    """
    return -(channels - 1) * patch_size**2 / 2 * math.log2(2 * math.pi * math.e)


def entropy_ceiling_bits(patch_size: int, mask: str = "circular", channels: int = 3, deck: bool = True) -> float:
    """The largest H_X (bits) that patches whose pixels and colours have a mean variance of at most 1 before the
    window (each image normalised to unit variance over all its pixels and colours, the deck's
    ``centering="image"``, and patches cut at uniform places) can have under `mask`: by Hadamard's inequality
    ``det C <= prod C_ii`` and the means' inequality, ``C_ii = mask_i^2 v_i`` with ``mean v_i <= 1``, reached
    by white patches of unit variance::

        H_X <= sum_i 1/2 log2(2 pi e mask_i^2)       (+ `deck_entropy_offset_bits` when `deck`)

    For the deck's 18 x 18 x 3 patches under its circular window: -1398 bits in the deck's convention (its
    48 corner pixels are held at 1e-4, 144 dimensions of variance 1e-8), +663 bits without the window. A
    logged ``terms/H_X`` above the ceiling cannot come from that pipeline (issue 32: the deck's curves imply
    about -550 bits)."""
    if mask not in MASKS:
        raise ValueError(f"mask={mask!r} is unknown; allowed: {', '.join(map(repr, MASKS))}")
    window = circular_mask(patch_size) if mask == "circular" else np.ones((patch_size, patch_size))
    ceiling = channels * float(np.sum(0.5 * np.log2(2 * math.pi * math.e * window**2)))
    return ceiling + (deck_entropy_offset_bits(patch_size, channels) if deck else 0.0)

