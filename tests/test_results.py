"""The README's Results block is generated from results files, each with its provenance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sonorant.cli.app import app, main
from sonorant.core.errors import SonorantError
from sonorant.evaluation.results import BEGIN, DEFAULT_DIR, END, render_results, update_readme

REPO = Path(__file__).resolve().parent.parent
META = {"date": "2026-01-02", "machine": "2-core Test CPU", "device": "cpu", "command": "sonorant bench tts --json x",
        "commit": "abc1234"}
TTS = {"kind": "bench-tts", "meta": META, "real_time_factor": 0.4321, "frames_per_second": 115.0,
       "first_audio_median_s": 0.118, "first_audio_max_s": 0.145, "full_wait_median_s": 0.923, "stopped": 5,
       "sentences": 6}


def test_sections_carry_their_figures_and_provenance(tmp_path):
    (tmp_path / "tts.json").write_text(json.dumps(TTS))
    text = render_results(tmp_path)
    assert "### TTS speed" in text
    assert "| 0.432 | 115 | 118 | 145 | 923 | 5/6 |" in text
    assert "2026-01-02, 2-core Test CPU, commit abc1234" in text and "`sonorant bench tts --json x`" in text


def test_tts_quality_renders_every_system_next_to_the_ground_truth(tmp_path):
    score = {"cases": 4, "wer": 41.5, "cer": 20.25, "similarity": 0.71, "stopped": 0.75, "duration_ratio": 1.04,
             "rtf": 0.45, "first_audio_s": 0.2}
    blank = dict.fromkeys(("stopped", "duration_ratio", "rtf", "first_audio_s"))
    (tmp_path / "tts.json").write_text(json.dumps({
        "kind": "eval-tts", "meta": META, "model": "/x/pretrained", "items_label": "4 test items of `c/m.jsonl`",
        "scores": [{"system": "transcript", **score}, {"system": "ground truth", **score, **blank, "wer": 9.0}],
        "different_speakers_similarity": 0.6}))
    text = render_results(tmp_path)
    assert "### TTS quality of `pretrained` on 4 test items of `c/m.jsonl`" in text
    assert "| transcript | 4 | 41.5 | 20.2 | 0.710 | 75% | 1.04 | 0.45 | 0.20 s | - |" in text
    assert "| ground truth | 4 | 9.0 | 20.2 | 0.710 | - | - | - | - | - |" in text
    assert "different speakers: 0.600" in text


def test_caption_adherence_renders_the_generations_between_ceiling_and_floor(tmp_path):
    def row(system, tempo):
        return {"system": system, "pieces": 30, "tempo": tempo, "key": 0.5, "key_exact": 0.3, "mode": 0.6,
                "drums": 0.9, "drums_heard": 0.8, "family": 0.4, "notes": 10, "pitch": 0.7, "note_family": 0.5}
    (tmp_path / "gen.json").write_text(json.dumps({
        "kind": "eval-generate", "meta": META, "model": "/x/pretrained", "seconds": 8.0, "cfg": 3.0,
        "agreements": [row("generated", 0.43), row("ground-truth renders", 0.57), row("generated, shuffled", 0.2)],
        "frechet": {"generated vs renders": 12.5}, "sounds": {"captions": 10, "generated": 0.8,
                                                              "generated_as_music": 0.2, "generated_as_speech": 0.0,
                                                              "recordings": 0.9},
        "tagger_accuracy": {"family": 0.62}, "domains": ["music", "sound"], "rtf": 0.7}))
    text = render_results(tmp_path)
    assert "### Caption adherence of `pretrained` (held-out captions, 8 s, guidance 3)" in text
    assert "| generated | 30 | 43% | 0.50 | 30% | 60% | 90% | 80% | 40% | 10 | 70% | 50% |" in text
    assert "| generated, shuffled | 30 | 20% |" in text
    assert "tagged as sound 80% of the generations" in text


def test_a_file_without_provenance_is_refused(tmp_path):
    (tmp_path / "old.json").write_text(json.dumps({k: v for k, v in TTS.items() if k != "meta"}))
    with pytest.raises(SonorantError, match="meta"):
        render_results(tmp_path)


def test_readme_block_is_rewritten_and_checked(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "tts.json").write_text(json.dumps(TTS))
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n## Results\n\n{BEGIN}\nold, typed by hand\n{END}\n\n## After\n")
    assert not update_readme(readme, tmp_path / "results", check=True)
    update_readme(readme, tmp_path / "results")
    text = readme.read_text()
    assert "typed by hand" not in text and "5/6" in text and text.endswith("## After\n")
    assert update_readme(readme, tmp_path / "results", check=True)
    args = ["bench", "results", "--dir", str(tmp_path / "results"), "--readme", str(readme), "--check"]
    assert CliRunner().invoke(app, args).exit_code == 0
    readme.write_text(readme.read_text().replace("5/6", "6/6"))  # a hand edit
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2



def test_the_repository_readme_matches_its_results_files():
    """The README's tables are exactly what the committed results files render to."""
    assert update_readme(REPO / "README.md", DEFAULT_DIR, check=True), \
        "README Results block is stale: run sonorant bench results --readme README.md"
