"""Codec speed next to the peers' architectures, on the same machine, audio and threads, in one run.

No weights can be downloaded here, so the peers are built with random weights: speed does not depend
on the weights. EnCodec 24 kHz (pip `encodec`) runs in this process. DAC 16 kHz (pip
`descript-audio-codec`) pins packages that clash with ours (descript-audiotools pins protobuf), so
when it is not importable here it runs in its own virtual environment under the cache folder, created
on first use with `pip` (packages only, never weights). A peer that cannot run gets a row saying why.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

PEERS = ("encodec", "dac")
DAC_PACKAGE = "descript-audio-codec==1.0.0"


@dataclass
class PeerSpeed:
    name: str
    sample_rate: int
    bitrate_kbps: float
    encode_x_realtime: float | None = None
    decode_x_realtime: float | None = None
    ours_vs_this: float | None = None  # our round-trip speed over this one's (>1: ours is faster)
    error: str | None = None  # why this row has no figures

    @property
    def roundtrip_x_realtime(self) -> float | None:
        if self.encode_x_realtime is None or self.decode_x_realtime is None:
            return None
        return 1.0 / (1.0 / self.encode_x_realtime + 1.0 / self.decode_x_realtime)


def test_signal(seconds: float, sample_rate: int, seed: int = 0) -> torch.Tensor:
    """[1, 1, N]: a noise-modulated tone (speed does not depend on content)."""
    n = int(seconds * sample_rate)
    t = torch.arange(n) / sample_rate
    noise = torch.randn(n, generator=torch.Generator().manual_seed(seed))
    tone = 0.3 * torch.sin(2 * torch.pi * 220 * t) * (1 + 0.5 * torch.sin(2 * torch.pi * 3 * t))
    return (tone + 0.05 * noise)[None, None]


@torch.inference_mode()
def time_codec(encode: Callable, decode: Callable, wav: torch.Tensor, seconds: float,
               repeats: int) -> tuple[float, float]:
    """Best-of-`repeats` x real time of one offline encode and one decode of the whole signal."""
    codes = encode(wav[..., : wav.shape[-1] // 10])  # warm-up
    decode(codes)
    enc, dec = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        codes = encode(wav)
        enc.append(time.perf_counter() - start)
        start = time.perf_counter()
        decode(codes)
        dec.append(time.perf_counter() - start)
    return seconds / min(enc), seconds / min(dec)


def ours(codec, seconds: float, repeats: int) -> PeerSpeed:
    wav = test_signal(seconds, codec.sample_rate).to(next(codec.parameters()).device)
    e, d = time_codec(codec.encode, codec.decode, wav, seconds, repeats)
    return PeerSpeed("sonorant (this codec)", codec.sample_rate, codec.config.bitrate() / 1000, e, d)


def encodec_speed(seconds: float, repeats: int, device: str = "cpu") -> PeerSpeed:
    name = "EnCodec 24 kHz, 6 kbps (random weights)"
    try:
        from encodec import EncodecModel
    except ImportError:
        return PeerSpeed(name, 24000, 6.0, error="encodec is not installed (pip install encodec)")
    model = EncodecModel.encodec_model_24khz(pretrained=False).to(device).eval()
    model.set_target_bandwidth(6.0)
    wav = test_signal(seconds, 24000).to(device)
    e, d = time_codec(model.encode, model.decode, wav, seconds, repeats)
    return PeerSpeed(name, 24000, 6.0, e, d)


def dac_speed(seconds: float, repeats: int, device: str = "cpu", venv: Path | None = None) -> PeerSpeed:
    """DAC's 16 kHz architecture (12 x 1024 codebooks at 50 Hz, 6 kbps), here or in its own environment."""
    name = "DAC 16 kHz, 6 kbps (random weights)"
    try:
        import dac
    except ImportError:
        if venv is None:
            return PeerSpeed(name, 16000, 6.0, error=f"descript-audio-codec is not installed ({DAC_PACKAGE} in "
                                                     "its own virtual environment: sonorant bench codec --peers)")
        return _in_venv(venv, seconds, repeats, device, name)
    model = dac.DAC(encoder_dim=64, encoder_rates=[2, 4, 5, 8], decoder_dim=1536, decoder_rates=[8, 5, 4, 2],
                    n_codebooks=12, codebook_size=1024, sample_rate=16000).to(device).eval()
    wav = test_signal(seconds, 16000).to(device)

    def encode(x: torch.Tensor) -> torch.Tensor:
        return model.encode(x)[0]

    e, d = time_codec(encode, model.decode, wav, seconds, repeats)
    return PeerSpeed(name, 16000, 6.0, e, d)


def dac_python(venv: Path) -> Path:
    """The Python of DAC's own environment, made on first use (`peer_environment`: torch and sonorant come
    from here; only DAC's own pins are installed). Raises PeerUnavailable saying why it cannot be made."""
    python = venv / "bin" / "python"
    if python.is_file():
        return python
    try:
        peer_environment(venv)
        subprocess.run([str(python), "-m", "pip", "install", "-q", DAC_PACKAGE], check=True,
                       capture_output=True, timeout=1800)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        detail = getattr(e, "stderr", b"") or b""
        lines = (detail.decode(errors="replace") if isinstance(detail, bytes) else detail).strip().splitlines()
        raise PeerUnavailable(f"its environment could not be made: {(lines or [str(e)])[-1]}") from None
    return python


def peer_environment(venv: Path, with_pip: bool = True) -> Path:
    """A virtual environment whose Python also sees this one's packages (torch, sonorant), after its own.

    `--system-site-packages` alone is not enough: inside a virtual environment (the usual way to install) it
    reaches the base Python's packages, not the running environment's. So a `.pth` file adds this interpreter's
    site folders (processing their own `.pth` files, which is how an editable install is found)."""
    import site

    command = [sys.executable, "-m", "venv", "--system-site-packages", str(venv)]
    subprocess.run(command + ([] if with_pip else ["--without-pip"]), check=True, capture_output=True, timeout=300)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True, timeout=120).stdout.strip()
    ours = [p for p in dict.fromkeys([*site.getsitepackages(), site.getusersitepackages()]) if Path(p).is_dir()]
    lines = [f"import site; site.addsitedir({p!r})" for p in ours]
    (Path(purelib) / "_sonorant_parent.pth").write_text("\n".join(lines) + "\n")
    return python


class PeerUnavailable(Exception):
    """A peer package cannot be installed or imported here; the message says why."""


def _in_venv(venv: Path, seconds: float, repeats: int, device: str, name: str) -> PeerSpeed:
    try:
        python = dac_python(venv)
        done = subprocess.run([str(python), "-m", "sonorant.evaluation.peers", "dac", str(seconds), str(repeats),
                               device], capture_output=True, text=True, timeout=3600,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
    except PeerUnavailable as e:
        return PeerSpeed(name, 16000, 6.0, error=str(e))
    except (subprocess.TimeoutExpired, OSError) as e:
        return PeerSpeed(name, 16000, 6.0, error=f"it did not finish in its environment: {e}")
    if done.returncode != 0:
        line = done.stderr.strip().splitlines() or ["no output"]
        return PeerSpeed(name, 16000, 6.0, error=f"it failed in its environment: {line[-1]}")
    return PeerSpeed(**json.loads(done.stdout.strip().splitlines()[-1]))


def default_venv() -> Path:
    """Where DAC's own environment lives: the user's cache folder."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "sonorant" / "peers" / "dac"


def peer_speeds(codec, seconds: float = 30.0, repeats: int = 2, device: str = "cpu",
                venv: Path | None = None) -> list[PeerSpeed]:
    """Ours first, then each peer, with our round-trip speed over theirs."""
    rows = [ours(codec, seconds, repeats), encodec_speed(seconds, repeats, device),
            dac_speed(seconds, repeats, device, venv)]
    base = rows[0].roundtrip_x_realtime
    for row in rows:
        if row.roundtrip_x_realtime and base:
            row.ours_vs_this = base / row.roundtrip_x_realtime
    return rows


def peer_table(rows: list[PeerSpeed]) -> str:
    lines = ["  codec                                     kbps  encode xRT  decode xRT  ours / this"]
    for r in rows:
        if r.error:
            lines.append(f"  {r.name:<40} {r.bitrate_kbps:5.1f}  not run: {r.error}")
        else:
            lines.append(f"  {r.name:<40} {r.bitrate_kbps:5.1f}  {r.encode_x_realtime:10.1f}  "
                         f"{r.decode_x_realtime:10.1f}  {r.ours_vs_this:10.2f}x")
    return "\n".join(lines)


if __name__ == "__main__":  # the DAC row, run inside DAC's own environment
    _, peer, secs, reps, dev = sys.argv
    print(json.dumps(asdict(dac_speed(float(secs), int(reps), dev))))
