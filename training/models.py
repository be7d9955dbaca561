"""PAN-DHCNN and MUL-DHCNN: the two deep hashing networks of SIDHCNN (Tables II and III).

Both map an image to a real-valued feature F ∈ R^l (the last layer is linear);
the binary code is ``sign(F)`` with F >= 0 -> +1 (bit 1). Layer by layer, for
DSRSID's inputs (no padding, ReLU after every convolution and hidden FC layer):

PAN-DHCNN, 1×256×256::

    conv 32@7×7/3 -> 84   maxpool 3/2 -> 41
    conv 64@5×5/2 -> 19   maxpool 2/1 -> 18
    conv 128@5×5/2 -> 7
    conv 256@5×5/1 -> 3   maxpool 3/1 -> 1
    fc 1024, fc 1024, fc l

MUL-DHCNN, 4×64×64::

    conv 64@5×5/2 -> 30   maxpool 3/2 -> 14
    conv 128@3×3/2 -> 6   maxpool 3/1 -> 4
    conv 256@3×3/1 -> 2   maxpool 2/1 -> 1
    fc 1024, fc 1024, fc l

Other sensors: the band count and patch size are arguments and the first FC
layer's width follows the flattened size of the last feature map. With
``padding="valid"`` (the paper) PAN patches need a side >= 241 and MS patches
>= 57; ``padding="same"`` keeps every layer but pads (convolutions by k // 2,
poolings by (k - 1) // 2), so any patch of at least 1×1 pixel fits: where the map
has already shrunk to 1×1 and a pooling window (the last 2×2 of MUL-DHCNN) would
not fit it, that pooling is left out (pooling a 1×1 map only copies it), and the
network records it in ``dropped_pools``. This happens for MS patches of 8×8 and
less (GF-2-like pairs tiled finely: PAN 32×32, MS 8×8) and PAN patches of 12×12 and less.
``ModelConfig(padding="auto")`` (:func:`resolve_padding`) takes "valid" when both
patches fit the paper's unpadded stages and "same" otherwise, so DSRSID-sized input
gets exactly Tables II/III.

Imports :mod:`.config` and :mod:`hashsearch._validate` (and torch).

Implementation notes (exactly the same function as the tables):

- Where a ReLU is followed by max pooling, the module applies the pooling first:
  ``maxpool(relu(x)) == relu(maxpool(x))`` because ReLU is monotone, and the ReLU
  then touches a 4× smaller map (measured: PAN inference 612 -> 840 images/s).
- Each network starts with a fixed per-band standardisation ``(x - mean) / std``
  (buffers, saved with the weights) whose statistics the trainer estimates on
  the training set, so checkpoints carry their input normalisation.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from hashsearch._validate import check_int

from .config import ModelConfig

__all__ = [
    "DHCNN",
    "MUL_STAGES",
    "PAN_STAGES",
    "ConvStage",
    "MulDHCNN",
    "PanDHCNN",
    "build_networks",
    "resolve_padding",
]

logger = logging.getLogger("hashsearch")


@dataclass(frozen=True)
class ConvStage:
    """One row of Tables II/III: a convolution, then optional max pooling.

    Attributes:
        filters: output channels.
        kernel: square kernel side.
        stride: convolution stride ("stride1").
        pool: pooling window side ("pooling"), 0 for none.
        pool_stride: pooling stride ("stride2").
    """

    filters: int
    kernel: int
    stride: int
    pool: int = 0
    pool_stride: int = 1


#: Table II (PAN-DHCNN).
PAN_STAGES: tuple[ConvStage, ...] = (
    ConvStage(32, 7, 3, 3, 2),
    ConvStage(64, 5, 2, 2, 1),
    ConvStage(128, 5, 2),
    ConvStage(256, 5, 1, 3, 1),
)
#: Table III (MUL-DHCNN).
MUL_STAGES: tuple[ConvStage, ...] = (
    ConvStage(64, 5, 2, 3, 2),
    ConvStage(128, 3, 2, 3, 1),
    ConvStage(256, 3, 1, 2, 1),
)
#: Hidden FC widths (both tables).
FC_WIDTHS: tuple[int, ...] = (1024, 1024)


def _out_size(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def _pads(stage: ConvStage, padding: str) -> tuple[int, int]:
    """(convolution padding, pooling padding) of a stage."""
    if padding == "same":
        return stage.kernel // 2, (stage.pool - 1) // 2
    return 0, 0


def _layer_plan(stages: Sequence[ConvStage], patch_size: int, padding: str) -> tuple[list[tuple[int, int]], list[int]]:
    """The feature maps a patch goes through, and the stages whose pooling is left out.

    Returns:
        ``(maps, dropped)``: ``maps`` is [(channels, side)] of the input and of the output
        of every convolution and kept pooling layer, a side < 1 ending the list (the patch
        is too small); ``dropped`` the indices of the stages whose pooling cannot apply to
        a 1×1 map with ``padding="same"`` and is left out (empty with "valid").
    """
    maps: list[tuple[int, int]] = []
    dropped: list[int] = []
    size, channels = patch_size, -1
    maps.append((channels, size))
    for i, stage in enumerate(stages):
        conv_pad, pool_pad = _pads(stage, padding)
        size = _out_size(size, stage.kernel, stage.stride, conv_pad)
        maps.append((stage.filters, size))
        if size < 1:
            break
        if stage.pool:
            pooled = _out_size(size, stage.pool, stage.pool_stride, pool_pad)
            if pooled < 1 and padding == "same":
                dropped.append(i)  # only on a 1×1 map: pooling it would copy it
                continue
            size = pooled
            maps.append((stage.filters, size))
            if size < 1:
                break
    return maps, dropped


def resolve_padding(model: ModelConfig) -> ModelConfig:
    """``model`` with ``padding="auto"`` resolved; other paddings are returned as they are.

    "auto" becomes "valid" (the paper's networks, unchanged) when the PAN and MS patches
    both fit Tables II/III without padding (PAN side >= 241, MS side >= 57), else "same"
    (logged): every layer kept, padded, with the poolings a 1×1 map cannot take left out.
    """
    if model.padding != "auto":
        return model
    fits = (model.pan_size >= DHCNN.min_patch_size(PAN_STAGES)
            and model.ms_size >= DHCNN.min_patch_size(MUL_STAGES))
    if not fits:
        logger.warning("patches PAN %d×%d / MS %d×%d are smaller than Tables II/III allow without padding "
                       "(PAN >= %d, MS >= %d): using padding='same'", model.pan_size, model.pan_size, model.ms_size,
                       model.ms_size, DHCNN.min_patch_size(PAN_STAGES), DHCNN.min_patch_size(MUL_STAGES))
    return dataclasses.replace(model, padding="valid" if fits else "same")


class DHCNN(nn.Module):
    """A deep hashing CNN: convolution stages, two hidden FC layers, a linear code layer.

    Args:
        stages: the convolution stages (e.g. :data:`PAN_STAGES`).
        in_bands: input channels C.
        patch_size: input side S (square patches S×S).
        bits: code length l (outputs of the last layer).
        padding: "valid" (the paper), "same" (see the module docstring) or "auto"
            ("valid" when the patch fits the unpadded stages, else "same"; the choice is
            the network's ``padding``).
        name: a label used in errors and provenance ("PAN-DHCNN", "MUL-DHCNN").

    Input: float tensor (n, C, S, S). Output: float tensor (n, l), the feature F.

    Attributes:
        dropped_pools: indices of the stages whose pooling is left out because the map
            is already 1×1 (only with ``padding="same"`` and tiny patches; empty for the
            paper's geometry).

    Raises:
        ValueError: with ``padding="valid"``, a patch too small for the unpadded stages
            (the message gives the minimum and the setting that takes it).
    """

    # Buffers (registered in __init__; declared here for the type checker).
    input_mean: torch.Tensor
    input_std: torch.Tensor

    def __init__(
        self,
        stages: Sequence[ConvStage],
        in_bands: int,
        patch_size: int,
        bits: int,
        *,
        padding: str = "valid",
        name: str = "DHCNN",
    ) -> None:
        super().__init__()
        if padding not in ("valid", "same", "auto"):
            raise ValueError(f"padding must be 'valid', 'same' or 'auto', got {padding!r}")
        for arg, value in (("in_bands", in_bands), ("patch_size", patch_size), ("bits", bits)):
            check_int(value, arg)
        if padding == "auto":  # this network alone: the paper's layers when the patch fits them
            padding = "valid" if _layer_plan(tuple(stages), patch_size, "valid")[0][-1][1] >= 1 else "same"
        self.name = name
        self.in_bands = in_bands
        self.patch_size = patch_size
        self.bits = bits
        self.padding = padding
        self.stages = tuple(stages)

        maps, dropped = _layer_plan(self.stages, patch_size, padding)
        if maps[-1][1] < 1:  # only "valid" gets here: "same" fits any patch
            minimum = self.min_patch_size(self.stages, padding)
            raise ValueError(
                f"{name} with padding={padding!r} (no padding, as in the paper) needs patches of at least "
                f"{minimum}×{minimum} pixels, got {patch_size}×{patch_size}; use padding='same' (pads every "
                "layer and takes any size) or padding='auto' (the paper's layers where they fit, 'same' otherwise)"
            )
        self.dropped_pools: tuple[int, ...] = tuple(dropped)
        layers: list[nn.Module] = []
        channels = in_bands
        for i, stage in enumerate(self.stages):
            conv_pad, pool_pad = _pads(stage, padding)
            layers.append(nn.Conv2d(channels, stage.filters, stage.kernel, stage.stride, padding=conv_pad))
            if stage.pool and i not in dropped:
                layers.append(nn.MaxPool2d(stage.pool, stage.pool_stride, padding=pool_pad))
            layers.append(nn.ReLU(inplace=True))
            channels = stage.filters
        self.features = nn.Sequential(*layers)
        side = maps[-1][1]
        self.flat_features = channels * side * side
        fc: list[nn.Module] = [nn.Flatten()]
        width = self.flat_features
        for hidden in FC_WIDTHS:
            fc += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            width = hidden
        fc.append(nn.Linear(width, bits))
        self.head = nn.Sequential(*fc)
        self.register_buffer("input_mean", torch.zeros(in_bands))
        self.register_buffer("input_std", torch.ones(in_bands))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He (Kaiming) normal initialisation of every layer, zero biases.

        Keeps the activation variance through the ReLU layers, so the initial
        features are O(1) rather than PyTorch's default ~0.02; at that scale the
        pairwise terms have a useful gradient from the first step (the loss is
        flat near F = 0, where every Ω_ij ≈ 0). The linear code layer draws its
        weights from N(0, 1 / (fan_in · l)), so that Ω = ½⟨F_i, F_j⟩ starts O(1)
        whatever the code length, instead of saturating the sigmoids (which,
        measured on fake data, gives huge first gradients that kill the ReLUs).
        """
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                if module.bias is not None:  # every layer here has one
                    nn.init.zeros_(module.bias)
        code_layer = self.head[-1]
        assert isinstance(code_layer, nn.Linear)
        nn.init.normal_(code_layer.weight, std=1.0 / math.sqrt(code_layer.in_features * self.bits))

    # ------------------------------------------------------------ geometry
    @staticmethod
    def spatial_sizes(stages: Sequence[ConvStage], patch_size: int, padding: str = "valid") -> list[int]:
        """Side of the feature map after every conv and (kept) pooling layer, input first.

        A last value < 1 means the patch is too small (with "valid" padding).
        """
        return [side for _, side in _layer_plan(stages, patch_size, padding)[0]]

    @classmethod
    def min_patch_size(cls, stages: Sequence[ConvStage], padding: str = "valid") -> int:
        """Smallest square patch side the stages accept."""
        size = 1
        while cls.spatial_sizes(stages, size, padding)[-1] < 1:
            size += 1
        return size

    def activation_bytes(self) -> int:
        """Bytes of the largest float32 feature map one image produces (sizes the CPU micro-batches)."""
        maps = _layer_plan(self.stages, self.patch_size, self.padding)[0]
        return 4 * max((self.in_bands if c < 0 else c) * s * s for c, s in maps)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, S, S) of one input image."""
        return (self.in_bands, self.patch_size, self.patch_size)

    # ------------------------------------------------------------ normalisation
    def set_input_stats(self, mean: Sequence[float] | torch.Tensor, std: Sequence[float] | torch.Tensor) -> None:
        """Set the per-band standardisation applied to inputs (C values each; std > 0)."""
        mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        std_t = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        if mean_t.numel() != self.in_bands or std_t.numel() != self.in_bands:
            raise ValueError(f"{self.name}: expected {self.in_bands} mean/std values, "
                             f"got {mean_t.numel()}/{std_t.numel()}")
        if not bool((std_t > 0).all()):
            raise ValueError(f"{self.name}: std must be > 0, got {std_t.tolist()}")
        self.input_mean.copy_(mean_t)
        self.input_std.copy_(std_t)

    @torch.no_grad()
    def calibrate(self, images: torch.Tensor, *, chunk: int = 64) -> None:
        """Data-dependent init (LSUV-like): every layer's pre-activation zero-mean, unit-variance.

        Layer by layer, in order, rescales each convolution / linear layer so that,
        on ``images``, each of its output channels has mean 0 and std 1 (over images
        and positions); the code layer's outputs become zero-mean, unit-variance
        features. The function class is unchanged (weights and biases only).

        Why: with plain random init, ReLU activations are positive and nearly the same
        for every image, so every output is dominated by a common component. A
        gradient step then moves all features together (measured on fake data: 98 % of
        a step's change is common-mode, and the step size is amplified by |mean
        activation|² / |its variation|² ≈ 30), which, with Algorithm 1's stored
        features, makes training oscillate. Centring every layer brings that ratio
        to ~0.5 and lets the same learning rate train the class structure.

        Args:
            images: float (n, C, S, S), n >= 2, a sample of the training inputs.
            chunk: images per forward pass.
        """
        if images.dim() != 4 or images.shape[0] < 2 or tuple(images.shape[1:]) != self.input_shape:
            raise ValueError(f"{self.name}.calibrate expects images of shape (n >= 2, "
                             f"{', '.join(map(str, self.input_shape))}), got {tuple(images.shape)}")
        layers = [*self.features, *self.head]
        targets = [(i, m) for i, m in enumerate(layers) if isinstance(m, (nn.Conv2d, nn.Linear))]
        x_all = (images - self.input_mean.view(1, -1, 1, 1)) / self.input_std.view(1, -1, 1, 1)
        for t, layer in targets:
            s1: torch.Tensor | None = None
            s2: torch.Tensor | None = None
            count = 0
            for start in range(0, x_all.shape[0], chunk):
                a = x_all[start : start + chunk]
                for m in layers[: t + 1]:
                    a = m(a)
                dims = (0, 2, 3) if a.dim() == 4 else (0,)
                a = a.double()
                s1 = a.sum(dim=dims) if s1 is None else s1 + a.sum(dim=dims)
                s2 = (a * a).sum(dim=dims) if s2 is None else s2 + (a * a).sum(dim=dims)
                count += a.numel() // a.shape[1]
            assert s1 is not None and s2 is not None  # images has n >= 2 rows: the loop ran
            assert layer.bias is not None  # every layer here has one
            mean = s1 / count
            std = torch.sqrt(torch.clamp(s2 / count - mean * mean, min=0.0)).clamp_min(1e-6)
            shape = (-1,) + (1,) * (layer.weight.dim() - 1)
            layer.weight.div_(std.view(shape).to(layer.weight))
            layer.bias.sub_(mean.to(layer.bias)).div_(std.to(layer.bias))

    # ------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features of a batch.

        Args:
            x: float tensor (n, C, S, S) (any memory format).

        Returns:
            float tensor (n, l).
        """
        if x.dim() != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"{self.name} expects input of shape (n, {self.in_bands}, {self.patch_size}, {self.patch_size}), "
                f"got {tuple(x.shape)}"
            )
        x = (x - self.input_mean.view(1, -1, 1, 1)) / self.input_std.view(1, -1, 1, 1)
        return self.head(self.features(x))

    def extra_repr(self) -> str:
        dropped = f", dropped_pools={self.dropped_pools}" if self.dropped_pools else ""
        return f"name={self.name!r}, input={self.input_shape}, bits={self.bits}, padding={self.padding!r}{dropped}"


class PanDHCNN(DHCNN):
    """PAN-DHCNN (Table II). Defaults: 1 band, 256×256 patches."""

    def __init__(self, bits: int = 32, in_bands: int = 1, patch_size: int = 256, *, padding: str = "valid") -> None:
        super().__init__(PAN_STAGES, in_bands, patch_size, bits, padding=padding, name="PAN-DHCNN")


class MulDHCNN(DHCNN):
    """MUL-DHCNN (Table III). Defaults: 4 bands, 64×64 patches."""

    def __init__(self, bits: int = 32, in_bands: int = 4, patch_size: int = 64, *, padding: str = "valid") -> None:
        super().__init__(MUL_STAGES, in_bands, patch_size, bits, padding=padding, name="MUL-DHCNN")


def build_networks(bits: int, model: ModelConfig | None = None) -> tuple[PanDHCNN, MulDHCNN]:
    """Both networks for a code length and input geometry (weights: :meth:`DHCNN.reset_parameters`).

    ``padding="auto"`` is resolved by :func:`resolve_padding`.

    Raises:
        ValueError: ``padding="valid"`` with a PAN or MS patch too small for the unpadded
            layers (the message names both minimums and the settings that work).
    """
    model = resolve_padding(model or ModelConfig())
    if model.padding == "valid":
        need_pan, need_ms = DHCNN.min_patch_size(PAN_STAGES), DHCNN.min_patch_size(MUL_STAGES)
        if model.pan_size < need_pan or model.ms_size < need_ms:
            raise ValueError(
                f"padding='valid' (no padding, as in the paper) needs PAN patches of at least {need_pan}×{need_pan} "
                f"and MS patches of at least {need_ms}×{need_ms} pixels, got PAN {model.pan_size}×{model.pan_size} "
                f"and MS {model.ms_size}×{model.ms_size}; use padding='same' (pads every layer and takes any size) "
                "or padding='auto' (the paper's layers where they fit, 'same' otherwise)"
            )
    pan = PanDHCNN(bits, model.pan_bands, model.pan_size, padding=model.padding)
    ms = MulDHCNN(bits, model.ms_bands, model.ms_size, padding=model.padding)
    return pan, ms
