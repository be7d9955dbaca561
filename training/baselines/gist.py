"""GIST descriptor (Oliva & Torralba, 2001) in NumPy/SciPy, for the CCA and SCM baselines.

The paper feeds GIST descriptors of both sources to CCA and SCM (Table VIII).
This is a Gabor-energy GIST in the spirit of the original:

1. **Resize** each band to ``image_size`` × ``image_size`` (bilinear).
2. **Prefilter**: scale the band to 0..255 (per image min-max), take log(1 + x),
   remove the low frequencies with a Gaussian high-pass (cut-off ``fc`` cycles
   per image) and divide by the local contrast (the same Gaussian applied to the
   squared output, + 0.2): whitening and local contrast normalisation.
3. **Gabor bank** in the frequency domain: ``scales`` radial bands centred at
   0.3 / 2^s cycles/pixel (Gaussian in log-frequency, bandwidth ~1 octave) times
   ``orientations`` angular Gaussians over [0, π) (symmetric in ±f, i.e. even
   filters; the energy is the magnitude of the filtered band).
4. **Pooling**: the mean energy of each filter output in a ``grid`` × ``grid``
   grid of blocks.

One band gives ``scales * orientations * grid²`` values (4 × 8 × 16 = 512 by
default). **Multispectral handling**: each band is described separately and the
band descriptors are concatenated (C × 512 values for C bands), keeping the
spectral information SCM and CCA can correlate with the PAN texture;
``band_mode="mean"`` describes the band average instead (512 values, a
panchromatic-like view of the MS patch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from hashsearch._validate import check_int

__all__ = ["GistConfig", "gist", "gist_dataset"]


@dataclass(frozen=True)
class GistConfig:
    """Parameters of :func:`gist`.

    Attributes:
        image_size: side the bands are resized to before filtering.
        scales: number of radial frequency bands.
        orientations: orientations per scale.
        grid: blocks per side for the energy pooling.
        fc: cut-off (cycles per image) of the prefilter's Gaussian.
        band_mode: "per_band" (concatenate band descriptors) or "mean" (describe the band average).
    """

    image_size: int = 128
    scales: int = 4
    orientations: int = 8
    grid: int = 4
    fc: float = 4.0
    band_mode: Literal["per_band", "mean"] = "per_band"

    def __post_init__(self) -> None:
        for name in ("image_size", "scales", "orientations", "grid"):
            check_int(getattr(self, name), name)
        if self.image_size < 2 * self.grid:
            raise ValueError(f"image_size ({self.image_size}) must be at least 2 * grid ({2 * self.grid})")
        if self.band_mode not in ("per_band", "mean"):
            raise ValueError(f"band_mode must be 'per_band' or 'mean', got {self.band_mode!r}")

    def dim(self, bands: int) -> int:
        """Descriptor length for images of ``bands`` channels."""
        per_band = self.scales * self.orientations * self.grid * self.grid
        return per_band * (bands if self.band_mode == "per_band" else 1)


def _frequency_grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    f = np.fft.fftfreq(n)  # cycles per pixel, FFT order
    fy, fx = np.meshgrid(f, f, indexing="ij")
    return np.hypot(fx, fy), np.arctan2(fy, fx)


def _gabor_bank(cfg: GistConfig) -> np.ndarray:
    """Transfer functions (scales * orientations, N, N), float32, FFT order."""
    radius, angle = _frequency_grid(cfg.image_size)
    radius = np.maximum(radius, 1e-9)
    filters = []
    sigma_log = 0.55 * math.log(2.0)  # ~1 octave (full width at half height)
    sigma_angle = math.pi / cfg.orientations * 0.6
    for s in range(cfg.scales):
        f0 = 0.3 / (2.0**s)
        radial = np.exp(-(np.log(radius / f0) ** 2) / (2 * sigma_log**2))
        for o in range(cfg.orientations):
            theta = math.pi * o / cfg.orientations
            # Angular distance modulo π (even filter: f and -f get the same gain).
            d = np.angle(np.exp(2j * (angle - theta))) / 2.0
            filters.append(radial * np.exp(-(d**2) / (2 * sigma_angle**2)))
    bank = np.stack(filters).astype(np.float32)
    bank[:, 0, 0] = 0.0  # no DC
    return bank


def _resize(bands: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of (m, H, W) to (m, size, size)."""
    from scipy.ndimage import zoom

    _, h, w = bands.shape
    if (h, w) == (size, size):
        return bands
    return zoom(bands, (1, size / h, size / w), order=1, mode="nearest", grid_mode=True)


def _prefilter(bands: np.ndarray, fc: float) -> np.ndarray:
    """Whitening + local contrast normalisation of (m, N, N) bands (see the module docstring)."""
    from scipy import fft as sfft

    m, n, _ = bands.shape
    lo = bands.reshape(m, -1).min(axis=1)[:, None, None]
    hi = bands.reshape(m, -1).max(axis=1)[:, None, None]
    x = np.log1p(255.0 * (bands - lo) / np.maximum(hi - lo, 1e-12))
    radius, _ = _frequency_grid(n)
    s1 = fc / math.sqrt(math.log(2.0)) / n  # cycles per pixel
    gauss = np.exp(-(radius**2) / (s1**2)).astype(np.float32)
    out = x - np.real(sfft.ifft2(sfft.fft2(x) * gauss))
    local = np.sqrt(np.abs(np.real(sfft.ifft2(sfft.fft2(out * out) * gauss))))
    return (out / (0.2 + local)).astype(np.float32)


def gist(images: Any, config: GistConfig | None = None, *, chunk: int = 16) -> np.ndarray:
    """GIST descriptors of a batch of images.

    Args:
        images: real array (n, C, H, W) or (C, H, W) (any units; each band is min-max
            scaled per image).
        config: descriptor parameters (default :class:`GistConfig`).
        chunk: images filtered at a time (bounds memory to chunk × C × filters × N²).

    Returns:
        float32 (n, config.dim(C)): for each band (or the band mean), the
        ``grid × grid`` block means of each filter's energy, filters ordered
        scale-major then orientation, blocks row-major.
    """
    from scipy import fft as sfft

    cfg = config or GistConfig()
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f"images must have shape (n, C, H, W), got {x.shape}")
    if x.dtype.kind not in "biuf":
        raise TypeError(f"images must be numeric, got dtype {x.dtype}")
    n, c = x.shape[:2]
    bank = _gabor_bank(cfg)
    nf, size, g = bank.shape[0], cfg.image_size, cfg.grid
    edges = np.linspace(0, size, g + 1).round().astype(int)
    out = np.empty((n, cfg.dim(c)), dtype=np.float32)
    for start in range(0, n, chunk):
        block = x[start : start + chunk].astype(np.float32)
        if cfg.band_mode == "mean":
            block = block.mean(axis=1, keepdims=True)
        m, bands = block.shape[:2]
        flat = _prefilter(_resize(block.reshape(m * bands, *block.shape[2:]), size), cfg.fc)
        spec = sfft.fft2(flat)  # (m*bands, N, N)
        energy = np.abs(sfft.ifft2(spec[:, None] * bank[None]))  # (m*bands, nf, N, N)
        pooled = np.add.reduceat(np.add.reduceat(energy, edges[:-1], axis=2), edges[:-1], axis=3)
        counts = np.outer(np.diff(edges), np.diff(edges))
        pooled = pooled / counts  # (m*bands, nf, g, g)
        out[start : start + m] = pooled.reshape(m, bands * nf * g * g)
    return out


def gist_dataset(dataset: Any, source: str, config: GistConfig | None = None, *, batch_size: int = 64,
                 progress: bool = False) -> np.ndarray:
    """GIST of one source's images over a dual-source dataset (dict items, or in-memory ``.pan``/``.ms``).

    Returns:
        float32 (len(dataset), config.dim(C)).
    """
    from tqdm.auto import tqdm

    if source not in ("pan", "ms"):
        raise ValueError(f"source must be 'pan' or 'ms', got {source!r}")
    arr = getattr(dataset, source, None)
    n = len(dataset)
    feats: list[np.ndarray] = []
    with tqdm(total=n, desc=f"GIST {source}", unit="img", disable=not progress, leave=False) as bar:
        for s in range(0, n, batch_size):
            stop = min(n, s + batch_size)
            if arr is not None and hasattr(arr, "shape") and len(arr.shape) == 4:
                batch = np.asarray(arr[s:stop])
            else:
                batch = np.stack([np.asarray(dataset[i][source]) for i in range(s, stop)])
            feats.append(gist(batch, config))
            bar.update(stop - s)
    return np.concatenate(feats) if feats else np.empty((0, (config or GistConfig()).dim(1)), np.float32)
