"""A small VQ-VAE for the demo model's shape masks, saved in vae-oid.npz form.

The decoder has exactly big_vision's PaliGemma mask-decoder architecture and
key names (REFERENCE.md §6), so paliprompt's Go mask decoder runs it
unchanged: 16 codes (4x4, row-major) from a 128 x 512 codebook ->
conv1x1 512->128, ReLU -> two residual blocks -> four ConvTranspose k4 s2 p1
(128->128->64->32->16), each followed by ReLU -> conv1x1 16->1. The encoder
is ours (only training needs it): it turns a 64x64 box-normalised mask into
the 16 codes the language model learns to emit.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

NUM_CODES, CODE_DIM, GRID = 128, 512, 4


class ResBlock(nn.Module):
    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, channels, 1),
        )

    def forward(self, x):
        return x + self.net(x)


def make_decoder(res_hidden: int = 128) -> nn.Sequential:
    """big_vision's decoder; indices give the npz keys decoder.0 ... decoder.12."""
    return nn.Sequential(
        nn.Conv2d(CODE_DIM, 128, 1), nn.ReLU(),               # 0, 1
        ResBlock(128, res_hidden), ResBlock(128, res_hidden),  # 2, 3
        nn.ConvTranspose2d(128, 128, 4, 2, 1), nn.ReLU(),      # 4, 5
        nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.ReLU(),       # 6, 7
        nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),        # 8, 9
        nn.ConvTranspose2d(32, 16, 4, 2, 1), nn.ReLU(),        # 10, 11
        nn.Conv2d(16, 1, 1),                                   # 12
    )


class MaskVQVAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(),    # 32
            nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),   # 16
            nn.Conv2d(64, 128, 4, 2, 1), nn.ReLU(),  # 8
            nn.Conv2d(128, 128, 4, 2, 1), nn.ReLU(),  # 4
            nn.Conv2d(128, CODE_DIM, 1),
        )
        self.codebook = nn.Embedding(NUM_CODES, CODE_DIM)
        self.decoder = make_decoder()

    def encode(self, masks: torch.Tensor) -> torch.Tensor:
        """masks [B,64,64] in 0..1 -> codes [B,16] (row-major over the 4x4 grid)."""
        z = self.encoder(masks[:, None] * 2 - 1)             # [B,512,4,4]
        flat = z.permute(0, 2, 3, 1).reshape(-1, CODE_DIM)  # row-major cells
        d = torch.cdist(flat, self.codebook.weight)
        return d.argmin(-1).view(masks.shape[0], GRID * GRID)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B,16] -> decoder output [B,64,64] (about -1..1; > 0 is inside)."""
        q = self.codebook(codes).view(codes.shape[0], GRID, GRID, CODE_DIM).permute(0, 3, 1, 2)
        return self.decoder(q)[:, 0]

    def loss(self, masks: torch.Tensor) -> torch.Tensor:
        z = self.encoder(masks[:, None] * 2 - 1).permute(0, 2, 3, 1).reshape(-1, CODE_DIM)
        codes = torch.cdist(z, self.codebook.weight).argmin(-1)
        q = self.codebook(codes)
        vq = ((q - z.detach()) ** 2).mean() + 0.25 * ((q.detach() - z) ** 2).mean()
        q = z + (q - z).detach()  # straight-through
        out = self.decoder(q.view(-1, GRID, GRID, CODE_DIM).permute(0, 3, 1, 2))[:, 0]
        return ((out - (masks * 2 - 1)) ** 2).mean() + vq


def train_vae(crops: np.ndarray, steps: int, seed: int, log=print, npz: str | None = None) -> MaskVQVAE:
    """Trains on box-normalised mask crops [N,64,64] (0..1). With npz, the
    codebook and decoder are that file's and stay fixed: only an encoder
    is fitted to them (a model trained on those codes keeps its meaning)."""
    torch.manual_seed(seed)
    model = MaskVQVAE()
    data = torch.from_numpy(crops)
    if npz is not None:
        load_npz(model, npz)
        model.codebook.requires_grad_(False)
        model.decoder.requires_grad_(False)
    else:
        with torch.no_grad():  # start the codebook on real encodings: no dead codes
            z = model.encoder(data[:512, None] * 2 - 1).permute(0, 2, 3, 1).reshape(-1, CODE_DIM)
            pick = torch.randperm(len(z), generator=torch.Generator().manual_seed(seed))[:NUM_CODES]
            model.codebook.weight.copy_(z[pick])
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    for step in range(steps):
        batch = data[torch.randint(len(data), (64,), generator=g)]
        loss = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 200 == 0 or step == steps - 1:
            log(f"vae step {step}/{steps} loss {loss.item():.4f}")
    return model.eval()


def mask_iou(pred_inside: np.ndarray, truth: np.ndarray) -> float:
    inter = np.logical_and(pred_inside, truth).sum()
    union = np.logical_or(pred_inside, truth).sum()
    return float(inter / union) if union else 1.0


def save_npz(model: MaskVQVAE, path: str) -> None:
    """Writes the codebook and decoder under vae-oid.npz's key names."""
    arrays = {"_vq_vae._embedding": model.codebook.weight.detach().numpy().astype(np.float32)}
    for key, value in model.decoder.state_dict().items():
        arrays[f"decoder.{key}"] = value.detach().numpy().astype(np.float32)
    np.savez(path, **arrays)


def load_npz(model: MaskVQVAE, path: str) -> None:
    """Reads the codebook and decoder that save_npz wrote."""
    arrays = np.load(path)
    with torch.no_grad():
        model.codebook.weight.copy_(torch.from_numpy(arrays["_vq_vae._embedding"]))
    model.decoder.load_state_dict({k[len("decoder."):]: torch.from_numpy(v) for k, v in arrays.items()
                                   if k.startswith("decoder.")})
