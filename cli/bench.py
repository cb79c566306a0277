"""`sonorant bench codec|lm|tts|train`."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer

from .flags import finite

app = typer.Typer(help="Speed benchmarks on this machine.", no_args_is_help=True)


@app.command()
def codec(
    model: Path = typer.Option(None, "--model", help="Codec or bundle directory (default: the shipped codec)."),
    seconds: float = typer.Option(60.0, "--seconds", callback=finite, min=1.0, max=3600.0,
                                  help="Audio duration to time."),
    repeats: int = typer.Option(3, "--repeats", min=1),
    device: str = typer.Option("cpu", "--device"),
    threads: int = typer.Option(0, "--threads", min=0, help="CPU threads (0 = torch default)."),
    peers: bool = typer.Option(False, "--peers", help="Also time EnCodec 24 kHz and DAC 16 kHz (random weights; "
                                                      "DAC in its own virtual environment, made on first use)."),
    json_out: Path = typer.Option(None, "--json", help="Also write the figures to this JSON file (with --peers, "
                                                       "speed bars beside it as .png)."),
) -> None:
    """Encode and decode speed (x real time, chunked streaming) and peak memory; with --peers, offline
    encode and decode speed next to the peers' architectures on the same audio."""
    import torch

    from ..codec.pretrained import load_codec
    from ..evaluation.bench import bench_codec

    if threads:
        torch.set_num_threads(threads)
    codec = load_codec(model, device)
    result = bench_codec(codec, seconds, repeats)
    print(f"codec on {result.device} ({result.threads} threads), {seconds:g} s of audio:\n"
          f"  encode    {result.encode_seconds:7.3f} s  {result.encode_x_realtime:7.1f}x real time\n"
          f"  decode    {result.decode_seconds:7.3f} s  {result.decode_x_realtime:7.1f}x real time\n"
          f"  roundtrip {result.roundtrip_x_realtime:7.1f}x real time (chunked streaming, bounded memory)\n"
          f"  offline   {result.offline_x_realtime:7.1f}x real time (one call over the whole file; baseline)\n"
          f"  streaming / offline speed: {result.streaming_vs_offline:.2f}\n"
          f"  algorithmic latency {result.algorithmic_latency_ms:g} ms; one frame through encode_step + "
          f"decode_step takes {result.frame_step_ms:.1f} ms\n"
          f"  peak RSS {result.peak_rss_mb:.0f} MB")
    figures = asdict(result)
    if peers:
        from ..evaluation.peers import default_venv, peer_speeds, peer_table

        rows = peer_speeds(codec, seconds, repeats, device, default_venv())
        print(f"offline encode / decode of the same {seconds:g} s, same threads:\n{peer_table(rows)}")
        figures["peers"] = [asdict(r) for r in rows]
        if json_out:
            from ..evaluation.plots import plots_available, speed_bars

            if plots_available():
                speed_bars([r.name for r in rows], {"encode": [r.encode_x_realtime for r in rows],
                                                    "decode": [r.decode_x_realtime for r in rows]},
                           json_out.with_suffix(".png"))
    if json_out:
        _write_json(json_out, "bench-codec", device, figures)


@app.command()
def lm(
    config: str = typer.Option("lm-small", "--config", help="Shipped LM recipe name (configs/) or a YAML file."),
    frames: list[int] = typer.Option([250, 500, 1000], "--frames", min=1, max=20000,
                                     help="Clip lengths in frames (repeat the flag)."),
    batch_size: int = typer.Option(1, "--batch-size", min=1),
    repeats: int = typer.Option(2, "--repeats", min=1),
    generate_frames: int = typer.Option(150, "--generate-frames", min=1, max=20000),
    device: str = typer.Option("cpu", "--device"),
    threads: int = typer.Option(0, "--threads", min=0, help="CPU threads (0 = torch default)."),
    json_out: Path = typer.Option(None, "--json", help="Also write the figures to this JSON file."),
) -> None:
    """Training step time and memory of the hierarchical LM against a flattened T x K baseline, and
    generation speed with and without the KV cache."""
    from ..evaluation.bench_lm import bench_lm, bench_table, to_json
    from ..training.recipe import lm_recipe, load_recipe_dict

    recipe = lm_recipe(load_recipe_dict(config))

    def progress(case) -> None:
        shown = case.error or f"{case.step_seconds:.3f} s/step"
        print(f"  {case.model} T={case.frames}: {shown}", flush=True)

    result = bench_lm(recipe.model, config, tuple(frames), batch_size, repeats, generate_frames, device, threads,
                      progress)
    print(bench_table(result))
    if json_out:
        _write_json(json_out, "bench-lm", device, to_json(result))


@app.command("lm-local-context")
def lm_local_context(
    out: Path = typer.Option(Path("reports/lm-local-context"), "--out", help="Work folder (corpus, runs)."),
    json_out: Path = typer.Option(None, "--json", help="Also write the figures to this JSON file."),
) -> None:
    """Train the small words study twice, feeding the local transformer the global state once ("first")
    or at every codebook ("every"); prints held-out loss, text gap and time of each."""
    from dataclasses import asdict

    from ..evaluation.lm_study import build_word_shards, train_study

    shards = out / "shards" if (out / "shards" / "index.json").is_file() else build_word_shards(out)
    runs = [train_study(shards, out / variant, variant, local_context=variant) for variant in ("first", "every")]
    for run in runs:
        last = run.valid[-1]
        print(f"{run.name:>6}: held-out loss {last['loss']:.3f}, text gap {last['text_gap']:.3f} nats/token, "
              f"{run.seconds:.0f} s for {last['step']} steps")
    if json_out:
        json_out.write_text(json.dumps([asdict(r) for r in runs], indent=2) + "\n")


@app.command()
def tts(
    model: str = typer.Option(None, "--model", help="Model bundle (default: the shipped one)."),
    voice: str = typer.Option(None, "--voice", help="Voice prompt (default: the bundle's default voice)."),
    voice_text: str = typer.Option(None, "--voice-text"),
    device: str = typer.Option("cpu", "--device"),
    threads: int = typer.Option(0, "--threads", min=0, help="CPU threads (0 = torch default)."),
    seed: int = typer.Option(0, "--seed"),
    int8: bool = typer.Option(True, "--int8/--fp32", help="On a CPU: the LM with int8 weights (the default) or "
                                                         "float32."),
    repeats: int = typer.Option(1, "--repeats", min=1, max=100,
                                help="Speak the sentences this many times; figures are medians over the runs."),
    json_out: Path = typer.Option(None, "--json", help="Also write the figures to this JSON file."),
) -> None:
    """TTS real-time factor and first-audio latency (streaming) on six Harvard sentences."""
    import torch

    from ..evaluation.bench_tts import bench_tts
    from ..tts import Synthesizer

    if threads:
        torch.set_num_threads(threads)
    synth = Synthesizer.from_pretrained(model, device=device, int8=None if int8 else False)
    result = bench_tts(synth, voice, voice_text, seed, repeats=repeats)
    print(f"tts on {result.device} ({result.threads} threads, {result.weights} LM), {result.mode} mode, "
          f"{result.sentences} sentences, "
          f"{result.audio_seconds:.1f} s of audio:\n"
          f"  real-time factor  {result.real_time_factor:.3f} ({result.frames_per_second:.0f} frames/s)"
          + (f", median of {len(result.runs)} runs ({min(result.runs):.3f}-{max(result.runs):.3f})"
             if len(result.runs) > 1 else "") + "\n"
          f"  first audio       {result.first_audio_median_s * 1000:.0f} ms median, "
          f"{result.first_audio_max_s * 1000:.0f} ms max (stream)\n"
          f"  full wait         {result.full_wait_median_s * 1000:.0f} ms median (synthesize; baseline)\n"
          f"  ended by itself   {result.stopped}/{result.sentences}")
    if json_out:
        _write_json(json_out, "bench-tts", device, asdict(result))


@app.command()
def train(
    kind: str = typer.Argument(..., help="codec or lm."),
    config: str = typer.Option(..., "--config", help="Recipe name (configs/) or YAML file."),
    data: Path = typer.Option(..., "--data", help="Codec: manifest or audio folder; LM: token shard directory."),
    processes: list[int] = typer.Option([1, 2], "--nproc", min=1, help="Process counts to compare (repeat)."),
    steps: int = typer.Option(20, "--steps", min=4, max=100000),
    device: str = typer.Option("cpu", "--device"),
    json_out: Path = typer.Option(None, "--json", help="Also write the figures to this JSON file."),
) -> None:
    """Training throughput under torchrun for each process count (same recipe and global batch)."""
    from ..evaluation.bench_train import bench_train, bench_train_table

    results = bench_train(kind, config, data, processes, steps, device)
    print(bench_train_table(results))
    if json_out:
        _write_json(json_out, "bench-train", device, {"rows": [asdict(r) for r in results]})


@app.command("codec-train")
def codec_train(
    data: Path = typer.Option(..., "--data", help="Corpus (manifest or folder): trains on its train split and "
                                                  "scores on its test split."),
    budget_minutes: float = typer.Option(..., "--budget-minutes", callback=finite, min=0.01, max=10000.0,
                                         help="Training wall-clock minutes per architecture."),
    out: Path = typer.Option(Path("runs/codec-train"), "--out", help="Runs folder (one run per architecture)."),
    manifest: Path = typer.Option(None, "--manifest", help="Held-out audio: this manifest's test split "
                                                           "(default: the corpus's own manifest)."),
    arch: list[str] = typer.Option(None, "--arch", help="sonorant, encodec, dac (repeat; default all)."),
    recipe: str = typer.Option("codec-16k", "--config", help="Codec recipe whose losses, batch, optimiser and "
                                                             "bitrate every architecture trains with."),
    max_items: int = typer.Option(12, "--max-items", min=1, help="Held-out clips per group."),
    max_steps: int = typer.Option(0, "--max-steps", min=0, help="Also stop after this many steps, with the budget's "
                                                                "learning rate: an A/B at equal steps against an "
                                                                "earlier row (0 = the budget alone)."),
    tiny: bool = typer.Option(False, "--tiny", help="Small versions of every architecture (quick checks)."),
    device: str = typer.Option("cpu", "--device"),
    threads: int = typer.Option(0, "--threads", min=0, help="CPU threads (0 = the recipe's)."),
    json_out: Path = typer.Option(None, "--json", help="Also write the figures to this JSON file (bars beside it "
                                                       "as .png)."),
) -> None:
    """Train ours and the EnCodec and DAC architectures with the same trainer, data, losses and wall-clock
    budget, then score each on held-out audio at the same bitrate (PESQ / STOI on speech only)."""
    from ..core.errors import SonorantError
    from ..evaluation.bench_codec_train import RaceSettings, bench_codec_train, race_figure, race_table
    from ..evaluation.peers import default_venv

    if manifest is None:
        manifest = data / "manifest.jsonl" if data.is_dir() else data
    if not manifest.is_file():
        raise SonorantError(f"{manifest}: no such manifest (the held-out audio); pass --manifest")
    settings = RaceSettings(str(data), str(manifest), budget_minutes, recipe, tiny, max_items, device=device,
                            threads=threads, max_steps=max_steps)
    rows = bench_codec_train(settings, out, arch or None, default_venv(), progress=lambda line: print(line, flush=True))
    table = race_table(rows, budget_minutes)
    print(table)
    if json_out:
        figure = race_figure(rows, json_out.with_suffix(".png"))
        _write_json(json_out, "bench-codec-train", device, {"settings": asdict(settings),
                                                             "figure": figure.name if figure else None,
                                                             "rows": [asdict(r) for r in rows]})


@app.command()
def results(
    folder: Path = typer.Option(None, "--dir", help="Results files (default: the repository's evaluation/results)."),
    readme: Path = typer.Option(None, "--readme", help="Rewrite this README's generated Results block."),
    check: bool = typer.Option(False, "--check", help="Only check that the README's block is up to date."),
) -> None:
    """Markdown tables from the --json files of bench and eval, each with its date, machine and command."""
    from ..core.errors import SonorantError
    from ..evaluation.results import DEFAULT_DIR, render_results, update_readme

    folder = folder or DEFAULT_DIR
    if readme is None:
        print(render_results(folder), end="")
        return
    if check and not update_readme(readme, folder, check=True):
        raise SonorantError(f"{readme}: the Results block is out of date; run sonorant bench results --readme {readme}")
    if not check:
        update_readme(readme, folder)
        print(f"{readme}: Results block rewritten from {folder}")


@app.command()
def serve(
    url: str = typer.Option(None, "--url", help="A running server (default: start one here on 127.0.0.1)."),
    model: str = typer.Option(None, "--model", help="Model bundle for the server started here."),
    levels: str = typer.Option("1,4,16", "--levels", help="Concurrent streams to measure, comma-separated."),
    requests: int = typer.Option(4, "--requests", min=1, help="Requests per client, one after the other."),
    max_concurrent: int = typer.Option(2, "--max-concurrent", min=1, help="The server's synthesis slots."),
    max_queue: int = typer.Option(16, "--max-queue", min=0, help="The server's queue (beyond it: 503)."),
    api_key: str = typer.Option(None, "--api-key", envvar="SONORANT_API_KEY"),
    device: str = typer.Option("cpu", "--device"),
    json_out: Path = typer.Option(None, "--json", help="Also write the figures to this JSON file."),
) -> None:
    """Load on `sonorant serve`: requests/s, latency percentiles, first-audio latency at 1, 4, 16 streams."""
    from ..core.errors import SonorantError
    from ..evaluation.bench_serve import bench_serve, load_table

    try:
        counts = tuple(int(n) for n in levels.split(","))
    except ValueError:
        raise SonorantError(f"--levels takes numbers separated by commas, got {levels!r}") from None
    rows = bench_serve(url, model, counts, requests, max_concurrent, max_queue, api_key, device)
    where = url or f"a server started here ({max_concurrent} slots, queue {max_queue})"
    print(f"POST /v1/audio/speech on {where}, {requests} requests per client:\n{load_table(rows)}")
    if json_out:
        _write_json(json_out, "bench-serve", device, {"url": url, "max_concurrent": max_concurrent,
                                                     "max_queue": max_queue, "rows": [asdict(r) for r in rows]})


def _write_json(path: Path, kind: str, device: str, figures: dict) -> None:
    """A results file: what wrote it (`kind`), where and how (`meta`), then the figures."""
    from ..evaluation.provenance import provenance

    path.write_text(json.dumps({"kind": kind, "meta": provenance(device), **figures}, indent=2) + "\n")
