"""Phase for a magnitude spectrogram, from the magnitudes' own spectral peaks.

Why: the VAE's decoder predicts a phase per STFT bin relative to the bin's centre frequency
(`AudioVAE.bin_phase_advance`). With n_fft 1920 at 48 kHz a bin is 25 Hz wide, wider than a
semitone below about 420 Hz, and the decoder's phase rarely carries the fraction of a bin that
places a bass note on its pitch: on 64 held-out clips, the VAE's magnitudes with the real phase
keep the key as well as the real audio does, while the real magnitudes with the VAE's phase lose
it as the VAE does (`experiments/probes/vae_phase_probe.py`). The magnitudes still say where each partial
lies inside its bin, through the shape of the window's main lobe around the peak.

Method (a phase vocoder driven by the magnitudes alone, in the spirit of peak-locked phase
vocoders, Laroche and Dolson 1999, and of phase-gradient reconstruction, Průša et al. 2017):
1. in every frame, find the peaks of the log-magnitude along frequency, and place each one inside
   its bin by fitting a parabola through the peak bin and its two neighbours (for a Hann window the
   log of the main lobe is close to a parabola);
2. give every bin to its nearest peak (the peak's "region");
3. advance each region's phase from the previous frame by the peak's frequency times the hop
   (the mean of its previous and current frequency), starting from the phase the peak bin had in
   the previous frame;
4. inside a region, bin k gets the region's phase plus pi k: a frame of `stft_same`'s layout
   starts half a window before its centre, so a sinusoid's coefficients alternate sign from bin to
   bin across the main lobe.

Limits: partials closer than about two and a half bins (60 Hz here; two low voices a fifth apart
near 100 Hz) share main lobes, and each pulls the other's estimated frequency, so such pairs are not
put on pitch; and phase differences between channels are not reproduced.

Deterministic and non-iterative: two channels with the same peaks get the same phase, so a centred
source stays centred. Cost: one loop over frames of gathers on (N, bins) tensors, about 0.23 s for
10 s of stereo on two CPU cores.
"""

from __future__ import annotations

import math

import torch

PEAK_FLOOR_DB = -80.0  # peaks this far below a frame's loudest bin are noise, not partials


def magnitude_phase(magnitude: torch.Tensor, hop_length: int, n_fft: int,
                    floor_db: float = PEAK_FLOOR_DB) -> torch.Tensor:
    """A phase for `magnitude` (N, bins, F), as a complex spectrogram (N, bins, F) with that magnitude.

    `hop_length` and `n_fft` are the STFT's (samples); frames follow `stft_same`'s layout (a frame
    begins half a window before its centre, Hann window). `bins` may be all n_fft // 2 + 1 or only
    the lowest ones (then the top two are only as good as the peaks they can see). Phase starts at
    0 in frame 0."""
    return magnitude_phase_block(magnitude, hop_length, n_fft, None, floor_db)[0]


def magnitude_phase_block(magnitude: torch.Tensor, hop_length: int, n_fft: int,
                          previous: tuple[torch.Tensor, torch.Tensor] | None = None,
                          floor_db: float = PEAK_FLOOR_DB) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """`magnitude_phase` for one block of frames of a longer spectrogram, and the state that
    continues it: `previous` is the state the block before returned (None: the first block).
    Block by block gives the same phase as all frames at once (long audio in bounded memory).
    State: the region phase and frequency (radians per sample) of the block's last frame, (N, bins)."""
    if magnitude.ndim != 3 or not 1 <= magnitude.shape[1] <= n_fft // 2 + 1:
        raise ValueError(f"magnitude must be (N, bins <= n_fft // 2 + 1 = {n_fft // 2 + 1}, frames), "
                         f"got shape {tuple(magnitude.shape)}")
    if magnitude.is_complex():
        raise ValueError("magnitude must be real (pass spectrogram.abs())")
    magnitude = magnitude.float()
    items, bins, frames = magnitude.shape
    if previous is not None and any(tuple(state.shape) != (items, bins) for state in previous):
        raise ValueError(f"previous state must be two ({items}, {bins}) tensors (the block before's), "
                         f"got {[tuple(state.shape) for state in previous]}")
    log_magnitude = magnitude.clamp_min(1e-12).log()  # (N, K, F)
    floor = log_magnitude.amax(dim=1, keepdim=True) + floor_db / 20.0 * math.log(10.0)  # (N, 1, F)
    below = torch.cat([log_magnitude[:, :1], log_magnitude[:, :-1]], dim=1)  # bin k - 1 (edge repeated)
    above = torch.cat([log_magnitude[:, 1:], log_magnitude[:, -1:]], dim=1)  # bin k + 1
    is_peak = (log_magnitude > below) & (log_magnitude >= above) & (log_magnitude > floor)  # (N, K, F)

    # 1. Each peak's position inside its bin (parabola vertex, in bins, within +-1/2).
    curvature = below - 2.0 * log_magnitude + above  # < 0 at a strict peak
    curved = curvature.abs() > 1e-9
    offset = 0.5 * (below - above) / torch.where(curved, curvature, torch.ones_like(curvature))
    offset = torch.where(curved, offset, torch.zeros_like(offset)).clamp(-0.5, 0.5)  # (N, K, F)

    # 2. The nearest peak of every bin (a bin with no peak in its frame keeps its own centre).
    bin_index = torch.arange(bins, device=magnitude.device).view(1, bins, 1).expand(items, bins, frames)
    far = 4 * bins
    previous_peak = torch.where(is_peak, bin_index, torch.full_like(bin_index, -far)).cummax(dim=1).values
    next_peak = torch.where(is_peak, bin_index, torch.full_like(bin_index, 2 * far)).flip(1).cummin(dim=1).values.flip(1)
    owner = torch.where(bin_index - previous_peak <= next_peak - bin_index, previous_peak, next_peak)
    owned = (owner >= 0) & (owner < bins)
    owner = torch.where(owned, owner, bin_index)  # (N, K, F) peak bin of each bin's region
    peak_offset = torch.where(owned, torch.gather(offset * is_peak, 1, owner), torch.zeros_like(offset))
    frequency = 2.0 * math.pi * (owner + peak_offset) / n_fft  # (N, K, F) radians per sample

    # 3. Advance each region's phase along time from its peak bin's phase in the previous frame.
    region_phase = torch.zeros(items, bins, frames, device=magnitude.device)
    last_phase, last_frequency = previous if previous is not None else (None, None)
    for frame in range(frames):
        if frame > 0:
            last_phase, last_frequency = region_phase[..., frame - 1], frequency[..., frame - 1]  # (N, K)
        elif previous is None:
            continue  # the first frame of the first block starts at phase 0
        peak = owner[..., frame]  # (N, K)
        advance = 0.5 * hop_length * (torch.gather(last_frequency, 1, peak) + torch.gather(frequency[..., frame], 1, peak))
        region_phase[..., frame] = torch.remainder(torch.gather(last_phase, 1, peak) + advance, 2.0 * math.pi)

    # 4. Alternate sign across the main lobe.
    phase = region_phase + math.pi * bin_index  # (N, K, F)
    return torch.polar(magnitude, phase), (region_phase[..., -1], frequency[..., -1])
