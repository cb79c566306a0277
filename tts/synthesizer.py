"""Zero-shot TTS: text + voice prompt -> speech, in one call or streamed chunk by chunk.

The LM reads an aligned phoneme stream: at every frame the phoneme it speaks (with its neighbours), and it
decides when to move on to the next one, so every phoneme is spoken once, in order, and the utterance
ends when the text does. Two ways to use a voice prompt, chosen by whether its transcript is known:
- `transcript`: the bundle's aligner times the prompt's phonemes, the prompt's frames are forced as the
  start of the utterance (on their own phonemes) and the new text continues that utterance;
- `reference`: the prompt's tokens as the speaker reference segment and the text alone (the way
  the LM is trained: the prompt is another utterance of the same speaker).
Long text is cut into sentences (`chunking`), spoken in turn in the same voice and joined with pauses.
Word timestamps come from the pointer: the frames it spent on each word's phonemes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..codec import Codec
from ..codec.streaming import StreamState
from ..core.errors import ModelError
from ..lm import Conditioning, Generation, HierarchicalLM, PrefixStore, SamplingConfig
from ..lm.batch import pointer_from_durations
from ..text.chunking import chunk_text
from ..text.frontend import TextFrontend, check_speakable, clean_text, phonemize
from .bundle import BundlePaths, lm_codec_fingerprint, resolve_bundle
from .prompt import check_transcript, prepare_prompt
from .voices import DamagedVoice, Voice, load_voice, voice_source

if TYPE_CHECKING:  # align/ reads the text frontend of this package: import it where it is used
    from ..align.words import Segment
    from .timestamps import PieceWords

DEFAULT_VOICE = "default"


@dataclass(frozen=True)
class SynthesisOptions:
    """How to sample and stream; the CLI's flags."""

    temperature: float = 0.8
    top_k: int = 50
    top_p: float = 1.0
    # Classifier-free guidance on the phonemes (1 or None: off, half the compute). On by default: on the
    # held-out voices it took the shipped LM's Whisper WER from 74 % to 44 % (README, "Guidance").
    cfg_scale: float | None = 2.0
    seed: int | None = None
    max_seconds: float = 60.0  # of generated audio, all text chunks together
    pause_seconds: float = 0.2  # silence between text chunks
    max_chunk_chars: int = 160
    speed: float = 1.0  # 0.5 (slow) to 2.0 (fast): a bias on the pointer's advance decision
    first_frames: int = 2  # decode and yield as soon as this many frames exist...
    chunk_frames: int = 16  # ...then every this many (320 ms; fewer, larger decoder calls cost less per frame)

    @property
    def guidance(self) -> float | None:
        """The guidance scale to sample with: None when off (scale 1 changes nothing and would cost a batch)."""
        return None if self.cfg_scale is None or self.cfg_scale == 1.0 else self.cfg_scale


@dataclass
class AudioChunk:
    samples: torch.Tensor  # [n] float32 in [-1, 1]
    sample_rate: int
    frames: int  # LM frames generated when this chunk was decoded (whole stream so far)
    text_index: int  # which text chunk it belongs to
    words: list[Segment] = field(default_factory=list)  # words that ended in this chunk (times in the output)


@dataclass
class SynthesisInfo:
    mode: str  # "transcript" | "reference" | "none" (no voice prompt)
    text_chunks: list[str] = field(default_factory=list)
    frames: int = 0
    ended: list[bool] = field(default_factory=list)  # per text chunk: the model stopped by itself
    first_audio_s: float | None = None
    synthesis_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    words: list[Segment] = field(default_factory=list)  # every word spoken, start and end in the output audio


@dataclass
class Audio:
    samples: torch.Tensor  # [N] float32 in [-1, 1]
    sample_rate: int
    info: SynthesisInfo

    @property
    def seconds(self) -> float:
        return self.samples.shape[-1] / self.sample_rate

    @property
    def real_time_factor(self) -> float:
        """Synthesis time / audio duration (below 1 = faster than real time)."""
        return self.info.synthesis_s / max(self.seconds, 1e-9)


class Synthesizer:
    def __init__(self, codec: Codec, lm: HierarchicalLM, frontend: TextFrontend, voices: Path | None = None,
                 device: str | torch.device = "cpu", aligner: Path | None = None) -> None:
        if lm.config.codebook_size != codec.codebook_size or lm.num_codebooks > codec.num_codebooks:
            raise ModelError(f"the LM models {lm.num_codebooks} x {lm.config.codebook_size} codes; the codec has "
                             f"{codec.num_codebooks} x {codec.codebook_size}")
        self.device = torch.device(device)
        self.codec, self.lm, self.frontend = codec.to(self.device).eval(), lm.to(self.device).eval(), frontend
        self.voices = voices
        self._voice_cache: dict[str, Voice] = {}
        self.aligner_dir = aligner
        self._aligner = None
        self._durations: dict[tuple[str, int], list[int] | None] = {}
        # Every sentence of a voice starts with its prompt: the attention state of that start is computed
        # once per voice and copied afterwards (`lm/prefix.py`).
        self._prefixes = PrefixStore()

    @classmethod
    def from_pretrained(cls, model: str | Path | None = None, device: str | torch.device = "cpu",
                        int8: bool | None = None, captions: bool = False) -> Synthesizer:
        """Load a bundle (None = the shipped default in `pretrained/`); with `captions`, its caption-conditioned
        LM (`sonorant generate`) instead of the speech LM. On a CPU the LM's frame steps run through traced
        graphs, and `int8` (default: on a CPU) gives its transformers int8 weights: what makes a frame-by-frame
        step fast on a CPU."""
        paths: BundlePaths = resolve_bundle(model, captions)
        codec = Codec.from_pretrained(paths.codec, device=device)
        lm = HierarchicalLM.from_pretrained(paths.lm, device=device)
        on_cpu = torch.device(device).type == "cpu"
        if int8 if int8 is not None else on_cpu:
            lm.int8_()
        if on_cpu:
            lm.trace_steps_()
        trained_on = lm_codec_fingerprint(paths.lm)
        if trained_on and trained_on != codec.fingerprint:
            raise ModelError(f"{paths.lm}: the LM was trained on tokens of codec {trained_on}, not of the codec in "
                             f"{paths.codec} ({codec.fingerprint})")
        return cls(codec, lm, TextFrontend.load(paths.frontend), paths.voices, device, paths.aligner)

    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    # -- voices -----------------------------------------------------------------------------------
    def voice_from_audio(self, path: str | Path, text: str | None = None, language: str = "en-us",
                         notes: list[str] | None = None) -> Voice:
        """Clean and encode a prompt file; `text` is its transcript (phonemised once, here)."""
        prepared = prepare_prompt(path, self.sample_rate)
        if notes is not None:
            notes.extend(prepared.notes)
        return Voice(codes=self._encode(prepared.audio), audio=prepared.audio, sample_rate=self.sample_rate,
                     codec_fingerprint=self.codec.fingerprint, text=text, phonemes=self._phonemes(text, language),
                     language=language)

    def resolve_voice(self, voice: str | Path | Voice | None, voice_text: str | None = None,
                      language: str = "en-us", notes: list[str] | None = None) -> Voice | None:
        """A Voice from a Voice, an audio file, a saved voice's name, or None (the bundle's default voice)."""
        if isinstance(voice, Voice):
            resolved = voice
        elif voice is None:
            if self.voices is None or not (self.voices / f"{DEFAULT_VOICE}.wav").is_file():
                return None
            resolved = self._bundle_voice(DEFAULT_VOICE)
        else:
            source = voice_source(voice, self.voices)
            if source.note and notes is not None:
                notes.append(source.note)
            if source.kind == "file":
                resolved = self.voice_from_audio(source.value, voice_text, language, notes)
            elif source.kind == "bundle":
                resolved = self._bundle_voice(source.value)
            else:
                resolved = load_voice(source.value)
        if resolved.codec_fingerprint == self.codec.fingerprint and resolved.codes.numel() \
                and int(resolved.codes.max()) >= self.codec.codebook_size:
            raise DamagedVoice(resolved.name or "voice", f"codes up to {int(resolved.codes.max())}, for a codec of "
                                                         f"{self.codec.codebook_size} entries")
        if resolved.codec_fingerprint != self.codec.fingerprint or resolved.codes.shape[0] < self.lm.num_codebooks:
            # saved with another codec (or fewer codebooks than this LM reads): encode again
            resolved = Voice(self._encode(resolved.audio), resolved.audio, resolved.sample_rate, self.codec.fingerprint,
                             resolved.text, resolved.phonemes, resolved.language, resolved.name)
        if voice_text is not None and voice_text != resolved.text:
            resolved = Voice(resolved.codes, resolved.audio, resolved.sample_rate, resolved.codec_fingerprint,
                             voice_text, self._phonemes(voice_text, language), language, resolved.name)
        return resolved

    def _bundle_voice(self, name: str) -> Voice:
        if name not in self._voice_cache:
            wav, txt = self.voices / f"{name}.wav", self.voices / f"{name}.txt"
            text = txt.read_text(encoding="utf-8").strip() if txt.is_file() else None
            voice = self.voice_from_audio(wav, text)
            voice.name = name
            self._voice_cache[name] = voice
        return self._voice_cache[name]

    def _phonemes(self, text: str | None, language: str) -> str | None:
        if text is None or not clean_text(text):
            return None
        check_transcript(text)
        return phonemize([text], language)[0]

    @torch.no_grad()
    def _encode(self, audio: torch.Tensor) -> torch.Tensor:
        codes = self.codec.encode(audio[None].to(self.device), num_codebooks=self.lm.num_codebooks)
        return codes[0].cpu()  # [K, P]

    # -- synthesis --------------------------------------------------------------------------------
    def synthesize(self, text: str, voice: str | Path | Voice | None = None, voice_text: str | None = None,
                   lang: str = "en-us", options: SynthesisOptions | None = None, **overrides) -> Audio:
        """Speak `text`; `overrides` are SynthesisOptions fields (seed=, temperature=, top_k=, ...)."""
        info = SynthesisInfo(mode="none")
        chunks = [c.samples for c in self.stream(text, voice, voice_text, lang, options, info=info, **overrides)]
        samples = torch.cat(chunks) if chunks else torch.zeros(0)
        return Audio(samples, self.sample_rate, info)

    @torch.no_grad()
    def stream(self, text: str, voice: str | Path | Voice | None = None, voice_text: str | None = None,
               lang: str = "en-us", options: SynthesisOptions | None = None, info: SynthesisInfo | None = None,
               **overrides) -> Iterator[AudioChunk]:
        """Yield audio as frames are generated: the first chunk after `first_frames` LM frames, then every
        `chunk_frames`. `info` (if given) is filled in as the stream goes."""
        start = time.perf_counter()
        options = resolve_options(options, overrides)
        info = info if info is not None else SynthesisInfo(mode="none")
        texts = chunk_text(check_speakable(text), options.max_chunk_chars)
        resolved = self.resolve_voice(voice, voice_text, lang, info.notes)
        aligned = resolved is not None and resolved.phonemes and self.aligned_prompt(resolved, lang, info.notes)
        info.mode = "none" if resolved is None else ("transcript" if aligned else "reference")
        info.text_chunks = texts
        rate = self.sample_rate
        budget = int(options.max_seconds * self.codec.frame_rate)
        offset = 0.0  # seconds of audio before the current text chunk
        # The decoder's state belongs to this call: concurrent streams, and offline encodes between chunks,
        # never see it.
        state = self.codec.new_stream(batch_size=1)
        for index, piece in enumerate(texts):
            if budget <= 0:
                info.notes.append(f"stopped at --max-seconds {options.max_seconds:g}")
                break
            if index:
                pause = int(options.pause_seconds * rate)
                offset += pause / rate
                yield AudioChunk(torch.zeros(pause), rate, info.frames, index)
            generation, warmup, words = self._generation(piece, resolved, lang, options, budget, index)
            words.offset = offset
            made = info.frames
            yield from self.render(generation, info, options, start, warmup, index, words, state)
            budget -= info.frames - made
            offset += (info.frames - made) / self.codec.frame_rate
        info.synthesis_s = time.perf_counter() - start

    def render(self, generation: Generation, info: SynthesisInfo, options: SynthesisOptions, start: float,
               warmup: torch.Tensor | None = None, index: int = 0,
               words: PieceWords | None = None, state: StreamState | None = None) -> Iterator[AudioChunk]:
        """Decode the frames of item 0 of `generation` as they come, through the decoder stream `state`
        (from `codec.new_stream`; None: inside `codec.streaming`): the first
        chunk after `options.first_frames` frames, then every `options.chunk_frames`. `warmup` [1, K, W]
        frames are decoded first and dropped, so the decoder continues the audio they end. With `words`,
        each chunk carries the words that ended in it."""
        if warmup is not None:
            self.codec.decode_step(warmup.to(self.device), state)
            self.codec.decode_flush(state)  # the hop it holds is the prompt's: the new audio starts after it
        pending: list[torch.Tensor] = []
        for frame in generation:
            if not bool(frame.valid[0]):
                break
            pending.append(frame.codes[0])
            info.frames += 1
            if words is not None:
                words.add(int(frame.token[0]))
            due = options.first_frames if info.first_audio_s is None else options.chunk_frames
            if len(pending) >= due:
                yield self._decode(pending, info, start, index, words, state)
                pending = []
        if words is not None:
            words.finish()
        if pending or self.codec.config.decoder_lag or (words is not None and words.ready):
            yield self._decode(pending, info, start, index, words, state, final=True)
        info.ended.append(bool(generation.ended[0]))

    def _decode(self, frames: list[torch.Tensor], info: SynthesisInfo, start: float, index: int,
                words: PieceWords | None = None, state: StreamState | None = None,
                final: bool = False) -> AudioChunk:
        """The audio of `frames`; `final`: with what the decoder still holds (the piece's last hop)."""
        parts = []
        if frames:
            codes = torch.stack(frames, dim=-1)[None]  # [1, K, n]
            parts.append(self.codec.decode_step(codes, state)[0, 0])
        if final:
            parts.append(self.codec.decode_flush(state)[0, 0])
        audio = torch.cat(parts).clamp(-1, 1).cpu() if parts else torch.zeros(0)
        if info.first_audio_s is None:
            info.first_audio_s = time.perf_counter() - start
        done = words.take() if words is not None else []
        info.words.extend(done)
        return AudioChunk(audio, self.sample_rate, info.frames, index, done)

    def aligned_prompt(self, voice: Voice, lang: str, notes: list[str]) -> list[int] | None:
        """Frames per utterance token of a voice prompt's transcript (the bundle's aligner), or None when the
        bundle has no aligner or the transcript does not match the prompt (then it serves as a reference)."""
        key = (voice.phonemes or "", voice.codes.shape[-1])
        if key not in self._durations:
            durations = None
            if self.aligner_dir is not None:
                from ..align.forced import AlignmentError, ForcedAligner

                if self._aligner is None:
                    self._aligner = ForcedAligner.from_pretrained(self.aligner_dir, device=str(self.device))
                ids = self._aligner.frontend.utterance_ids(voice.phonemes, lang)
                try:
                    result = self._aligner.align_tokens(voice.audio, voice.phonemes, ids, None)
                    if sum(result.durations) == voice.codes.shape[-1]:
                        durations = result.durations
                except AlignmentError as e:
                    notes.append(f"the voice prompt is used as a reference only: {e}")
            self._durations[key] = durations
        return self._durations[key]

    def _generation(self, piece: str, voice: Voice | None, lang: str, options: SynthesisOptions, budget: int,
                    index: int) -> tuple[Generation, torch.Tensor | None, PieceWords]:
        ipa = phonemize([piece], lang)[0]
        ids = self.frontend.utterance_ids(ipa, lang)
        prefix = prefix_pointer = warmup = None
        start = 0
        durations = self.aligned_prompt(voice, lang, []) if voice is not None and voice.phonemes else None
        if durations is not None:
            # The new text continues the prompt's utterance: its phonemes after the prompt's, without a new
            # language tag; the prompt's frames are forced on the tokens the aligner gave them.
            prompt_ids = self.frontend.utterance_ids(voice.phonemes, lang)
            start = len(prompt_ids)
            ids = prompt_ids + ids[1:]
            prefix = voice.codes[None].to(self.device)  # [1, K, P]
            prefix_pointer = pointer_from_durations(durations)[None].to(self.device)
            warmup = voice.codes[None, :, -WARMUP_FRAMES:]
        phonemes = torch.tensor([ids], device=self.device)
        prompt = voice.codes[None].to(self.device) if voice is not None else None
        cond = Conditioning(phonemes, torch.tensor([len(ids)], device=self.device), prompt,
                            None if prompt is None else torch.tensor([prompt.shape[-1]], device=self.device))
        seed = None if options.seed is None else options.seed + index
        sampling = SamplingConfig(temperature=options.temperature, top_k=options.top_k, top_p=options.top_p,
                                  cfg_scale=options.guidance, seed=seed, max_frames=budget, speed=options.speed)
        generation = Generation(self.lm, cond, sampling, prefix=prefix, prefix_pointer=prefix_pointer,
                                start=torch.tensor([start], device=self.device), store=self._prefixes)
        from .timestamps import piece_words

        return generation, warmup, piece_words(piece, ipa, lang, start - 1 if durations is not None else 0,
                                               self.codec.frame_rate)


WARMUP_FRAMES = 16  # more than the codec decoder's receptive field, in frames


def resolve_options(options: SynthesisOptions | None, overrides: dict) -> SynthesisOptions:
    options = options or SynthesisOptions()
    unknown = set(overrides) - set(SynthesisOptions.__dataclass_fields__)
    if unknown:
        raise TypeError(f"unknown synthesis options: {', '.join(sorted(unknown))}")
    given = {k: v for k, v in overrides.items() if v is not None}
    return SynthesisOptions(**{**options.__dict__, **given})

