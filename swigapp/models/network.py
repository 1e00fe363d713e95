"""The networks: SwigNet (LR maps + HR guides -> HR maps) and WmriUNet (guides only).

SwigNet is a 2.5D residual CNN from LR maps + HR guides to HR maps (PD, T1, T2).

Each output slice sees ``2 context + 1`` neighbouring slices of every input as channels.
Inputs per slice: the LR maps in the network domain (PD, ln T1, ln T2), the normalised
guides, each guide's contrast synthesised from the LR maps by its own protocol (centre
slice), and the guides' presence flags. The output is the LR maps plus a learned residual
(global skip), decoded to physical ranges; the last layer starts at zero, so an untrained
network returns (almost) its LR input. Without the LR input (``use_lr=False``, the ablation after
Qiu et al.) the skip starts from a learned constant instead.

WmriUNet (``arch="unet"``) is the wmri2q method after Qiu et al. (ISMRM 2022): a 2.5D U-Net
that maps the weighted images alone (plus presence flags) to PD, T1 and T2. Both networks
take the same arguments, so training, adaptation and inference code serve either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as nnf

from swigapp.models.features import GUIDE_ORDER, decode, encode

#: Start of the skip without LR input: white matter at 3T (PD 0.7, T1 0.9 s, T2 0.08 s) in
#: the network domain (PD, ln T1, ln T2).
WM_BASE = (0.7, -0.105, -2.526)


@dataclass(frozen=True)
class NetConfig:
    """Architecture hyper-parameters (recorded in checkpoints and model cards)."""

    width: int = 32
    blocks: int = 5
    context: int = 1
    use_lr: bool = True
    n_guides: int = len(GUIDE_ORDER)
    #: "resnet" (SwigNet) or "unet" (WmriUNet: ``width`` channels at full resolution,
    #: doubled at each of ``blocks`` down-sampling levels; no LR input)
    arch: str = "resnet"

    def as_dict(self) -> dict:
        """Plain dict of the fields."""
        return asdict(self)


class ResBlock(nn.Module):
    """conv3x3 - ReLU - conv3x3 with an identity skip."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + conv(relu(conv(x))); in place on the fresh intermediates (a third less
        memory traffic on CPU, the same values)."""
        return self.conv2(torch.relu_(self.conv1(x))).add_(x)


def stack_slices(volume: torch.Tensor, context: int) -> torch.Tensor:
    """(B, C, H, W, S) -> (B*S, C*(2 context + 1), H, W), neighbours as channels (edge-padded)."""
    b, c, h, w, s = volume.shape
    if context == 0:
        return volume.permute(0, 4, 1, 2, 3).reshape(b * s, c, h, w)
    first = volume[..., :1].expand(-1, -1, -1, -1, context)
    last = volume[..., -1:].expand(-1, -1, -1, -1, context)
    padded = torch.cat([first, volume, last], dim=-1)
    windows = padded.unfold(-1, 2 * context + 1, 1)  # (B, C, H, W, S, K)
    return windows.permute(0, 4, 1, 5, 2, 3).reshape(b * s, c * (2 * context + 1), h, w)


def kept_slices(x: torch.Tensor, b: int, keep: slice | None) -> torch.Tensor:
    """Rows (B*S, ...) of the slices ``keep`` of each of the ``b`` volumes (all if None)."""
    return x if keep is None else x.unflatten(0, (b, -1))[:, keep].flatten(0, 1)


def in_batches(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch: int | None
) -> torch.Tensor:
    """``fn`` over the rows of ``x``, ``batch`` rows at a time (all at once if None): on CPU
    two 2D slices at a time keep the activations in cache (~1.4x faster than 16)."""
    if batch is None or len(x) <= batch:
        return fn(x)
    return torch.cat([fn(part) for part in x.split(batch)])


def input_blocks(config: NetConfig) -> list[tuple[int, bool]]:
    """SwigNet's per-slice input in ``slice_inputs``' order: (channels, with neighbouring
    slices?) for each block."""
    g = config.n_guides
    blocks = [(g, True), (g, False)]  # guides, presence flags
    if config.use_lr:
        blocks = [(3, True), (g, False), *blocks]  # LR maps, guides synthesised from them
    return blocks


class SwigNet(nn.Module):
    """2.5D residual CNN; see the module docstring. Works on (B, C, H, W, S) volumes."""

    def __init__(self, config: NetConfig | None = None) -> None:
        super().__init__()
        self.config = config or NetConfig()
        cfg = self.config
        k = 2 * cfg.context + 1
        c_in = sum(n * (k if sliced else 1) for n, sliced in input_blocks(cfg))
        self.head = nn.Conv2d(c_in, cfg.width, 3, padding=1)
        self.body = nn.Sequential(*(ResBlock(cfg.width) for _ in range(cfg.blocks)))
        self.tail = nn.Conv2d(cfg.width, 3, 3, padding=1)
        # near-zero start: the untrained network returns (almost exactly) its LR input, and
        # the body still receives gradients from the first step
        nn.init.normal_(self.tail.weight, std=1e-4)
        nn.init.zeros_(self.tail.bias)
        self.base = nn.Parameter(torch.tensor(WM_BASE), requires_grad=not cfg.use_lr)

    @property
    def halo(self) -> int:
        """Receptive radius in pixels (one per 3x3 convolution): an output pixel depends on
        the inputs within this distance only."""
        return 2 * self.config.blocks + 2

    def slice_inputs(
        self,
        lr_up: torch.Tensor,
        guides: torch.Tensor,
        synth: torch.Tensor,
        present: torch.Tensor,
        keep: slice | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-slice network input (B*S, C_in, H, W) and the skip base (B*S, 3, H, W), of
        the slices ``keep`` only if given (B*S then counts those)."""
        b, _, h, w, s = guides.shape
        ctx = self.config.context
        gate = present[:, :, None, None, None]
        flags = gate.expand(-1, -1, h, w, s)
        parts = [stack_slices(guides * gate, ctx), stack_slices(flags, 0)]
        if self.config.use_lr:
            z_lr = encode(lr_up)
            parts = [stack_slices(z_lr, ctx), stack_slices(synth * gate, 0), *parts]
            base = stack_slices(z_lr, 0)
        else:
            base = self.base[None, :, None, None].expand(b * s, -1, h, w)
        x = kept_slices(torch.cat(parts, dim=1), b, keep)
        # channels-last runs the oneDNN convolutions ~1.5x faster on CPU
        return x.contiguous(memory_format=torch.channels_last), kept_slices(base, b, keep)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The convolutions: per-slice input -> residual in the (PD, ln T1, ln T2) domain."""
        return self.tail(self.body(torch.relu_(self.head(x))))

    def forward(
        self,
        lr_up: torch.Tensor,
        guides: torch.Tensor,
        synth: torch.Tensor,
        present: torch.Tensor,
        keep: slice | None = None,
        batch: int | None = None,
    ) -> torch.Tensor:
        """Predict HR maps (B, 3, H, W, S) in physical units (PD a.u., T1 and T2 in s).

        lr_up: (B, 3, H, W, S) LR maps on the HR grid; guides, synth: (B, G, H, W, S);
        present: (B, G) flags. Slices run along the last axis. ``keep``: predict only these
        slices (the others still serve as their context; S then counts the kept ones);
        ``batch``: run the convolutions that many slices at a time (inference).
        """
        b, _, h, w, _ = guides.shape
        x, base = self.slice_inputs(lr_up, guides, synth, present, keep)
        s = len(x) // b
        z = base + in_batches(self.residual, x, batch)
        return decode(z.reshape(b, s, 3, h, w).permute(0, 2, 3, 4, 1))


def _double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.ReLU(inplace=True),
    )


class WmriUNet(nn.Module):
    """2.5D U-Net from weighted images to maps (wmri2q, after Qiu et al., ISMRM 2022).

    Same call signature as :class:`SwigNet`; ``lr_up`` and ``synth`` are ignored: the maps
    come from the guides alone. Output = a learned
    base (white matter) + the U-Net's output, decoded to physical ranges.
    """

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        if config.use_lr or config.arch != "unet":
            raise ValueError("WmriUNet needs NetConfig(arch='unet', use_lr=False)")
        self.config = config
        k = 2 * config.context + 1
        widths = [config.width * 2**i for i in range(config.blocks + 1)]
        c_in = config.n_guides * k + config.n_guides
        self.down = nn.ModuleList()
        for w in widths:
            self.down.append(_double_conv(c_in, w))
            c_in = w
        self.up = nn.ModuleList(
            _double_conv(widths[i + 1] + widths[i], widths[i])
            for i in reversed(range(config.blocks))
        )
        self.tail = nn.Conv2d(widths[0], 3, 1)
        #: no finite receptive radius to crop to: each output pixel sees the whole slice
        self.halo = None
        nn.init.normal_(self.tail.weight, std=1e-3)
        nn.init.zeros_(self.tail.bias)
        self.base = nn.Parameter(torch.tensor(WM_BASE))

    def forward(
        self,
        lr_up: torch.Tensor,
        guides: torch.Tensor,
        synth: torch.Tensor,
        present: torch.Tensor,
        keep: slice | None = None,
        batch: int | None = None,
    ) -> torch.Tensor:
        """HR maps (B, 3, H, W, S) (PD a.u., T1 and T2 in s) from guides (B, G, H, W, S);
        ``keep`` and ``batch`` as in :meth:`SwigNet.forward`."""
        b, _, h, w, s = guides.shape
        gate = present[:, :, None, None, None]
        x = torch.cat(
            [
                stack_slices(guides * gate, self.config.context),
                stack_slices(gate.expand(-1, -1, h, w, s), 0),
            ],
            dim=1,
        )
        x = kept_slices(x, b, keep)
        s = len(x) // b
        z = self.base[None, :, None, None] + in_batches(self._unet, x, batch)
        return decode(z.reshape(b, s, 3, h, w).permute(0, 2, 3, 4, 1))

    def _unet(self, x: torch.Tensor) -> torch.Tensor:
        """Per-slice input (N, C, H, W) -> the U-Net's output (N, 3, H, W)."""
        h, w = x.shape[-2:]
        levels = self.config.blocks
        pad_h, pad_w = (-h) % 2**levels, (-w) % 2**levels
        x = nnf.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else nnf.max_pool2d(x, 2))
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            x = nnf.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.tail(x)[..., :h, :w]


def build_network(config: NetConfig) -> nn.Module:
    """The network of a configuration: SwigNet (``arch="resnet"``) or WmriUNet (``"unet"``)."""
    if config.arch == "resnet":
        return SwigNet(config)
    if config.arch == "unet":
        return WmriUNet(config)
    raise ValueError(f"unknown network architecture {config.arch!r} (resnet or unet)")


def widen_context(model: SwigNet, context: int) -> SwigNet:
    """A SwigNet that sees ``context`` slices on each side and computes what ``model`` does.

    The head's weights on the slices ``model`` never saw start at zero, so fine-tuning from
    the result starts from the smaller-context network's predictions.
    """
    old = model.config
    if not isinstance(model, SwigNet) or context < old.context:
        name = type(model).__name__
        raise ValueError(f"cannot widen a {name} of context {old.context} to {context}")
    wide = SwigNet(NetConfig(**{**old.as_dict(), "context": context}))
    state = model.state_dict()
    k_old, k_new = 2 * old.context + 1, 2 * context + 1
    shift = context - old.context
    head, old_head = torch.zeros_like(wide.head.weight), state["head.weight"]
    i_old = i_new = 0
    for channels, sliced in input_blocks(old):
        k, k_wide, offset = (k_old, k_new, shift) if sliced else (1, 1, 0)
        for _ in range(channels):
            head[:, i_new + offset : i_new + offset + k] = old_head[:, i_old : i_old + k]
            i_old, i_new = i_old + k, i_new + k_wide
    state["head.weight"] = head
    wide.load_state_dict(state)
    return wide.train(model.training)
