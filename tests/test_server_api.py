"""The server's endpoints in process (Starlette's TestClient): speech, formats, voices, codec, errors, auth,
metrics, the WebSocket and the page. Live streaming, load and the browser are in test_server_live/page."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from sonorant.codec.tokenfile import TokenFile  # noqa: E402
from sonorant.server import create_app  # noqa: E402

from .conftest import EXAMPLE_WAV  # noqa: E402
from .server_util import reference, server_config, tiny_synth, wav_samples  # noqa: E402

TRANSCRIPT = EXAMPLE_WAV.with_suffix(".txt").read_text().strip()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("server-api")


@pytest.fixture(scope="module")
def client(store):
    app = create_app(server_config(store), tiny_synth())
    with TestClient(app) as c:
        yield c


def speak(client, **fields):
    return client.post("/v1/audio/speech", json={"model": "tts-1", "input": "Hello there.", "seed": 3, **fields})


def test_speech_streams_the_library_s_samples_in_every_format(client):
    want = reference(tiny_synth(), "Hello there.", 3)
    wav = speak(client)
    assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
    assert wav.headers["x-sample-rate"] == "16000" and wav.headers["x-voice-mode"] == "transcript"
    assert np.array_equal(wav_samples(wav.content), want) and len(want) > 0
    pcm = speak(client, response_format="pcm")
    assert np.array_equal(np.frombuffer(pcm.content, dtype="<i2"), want)
    flac, rate = sf.read(io.BytesIO(speak(client, response_format="flac").content), dtype="int16")
    assert rate == 16000 and len(flac) == len(want)  # libsndfile rounds to 16 bits its own way: within 1 LSB
    assert np.abs(flac.astype(int) - want).max() <= 1
    ogg, rate = sf.read(io.BytesIO(speak(client, response_format="ogg").content))
    assert rate == 16000 and abs(len(ogg) - len(want)) < 2048
    assert not np.array_equal(wav_samples(speak(client, seed=4).content), want)


def _error(response, status: int, message: str = "") -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"} and {"message", "type"} <= set(body["error"]), body
    assert message.lower() in body["error"]["message"].lower(), body
    return body["error"]


def _store_files(store) -> list[str]:
    voices = store / "voices"
    return sorted(str(p.relative_to(voices)) for p in voices.rglob("*")) if voices.exists() else []


def test_bad_input_gets_an_openai_shaped_4xx_and_writes_nothing(client, store):
    before = _store_files(store)
    post = lambda body: client.post("/v1/audio/speech", content=body,  # noqa: E731
                                    headers={"Content-Type": "application/json"})
    _error(post(b"{not json"), 400, "not valid JSON")
    _error(post(b"[1, 2]"), 400)
    _error(speak(client, input=None), 400, "input")
    _error(client.post("/v1/audio/speech", json={"model": "tts-1"}), 400, "input")
    _error(speak(client, input=42), 400, "input")
    _error(speak(client, input="   "), 400, "empty")
    _error(speak(client, input="x" * 301), 400, "limit is 300")
    _error(speak(client, voice="nobody"), 400, "unknown voice")
    for name in ("../default", "a/b", "a..b", "bad\x01name", ".hidden"):
        assert _error(speak(client, voice=name), 400)["param"] == "voice"
    _error(speak(client, response_format="aac"), 400, "not supported")
    _error(speak(client, speed=3.0), 400, "speed")
    _error(speak(client, speed="fast"), 400, "speed")
    _error(speak(client, temperature=-1), 400, "temperature")
    _error(speak(client, surprise=True), 400, "surprise")
    _error(speak(client, stream_format="sse"), 400, "stream_format")
    _error(client.get("/v1/nothing"), 404)
    _error(client.get("/v1/audio/speech"), 405)
    # Voices: not audio, too large, bad or taken names, missing parts; deleting what is not there.
    wav = EXAMPLE_WAV.read_bytes()
    add = lambda name, data=wav, **extra: client.post(  # noqa: E731
        "/v1/voices", data={"name": name, **extra}, files={"file": ("prompt.wav", data, "audio/wav")})
    _error(add("notaudio", b"RIFF but not really a wav file" * 10), 400, "not a readable audio file")
    _error(add("big", b"\0" * 700_000), 413, "limit")
    _error(add("x..y"), 400, "not a voice name")
    _error(add("a/b"), 400)
    _error(add("tab\tname"), 400)
    _error(add("default"), 409, "exists")
    _error(add("silent", np.zeros(32000, dtype="<i2").tobytes()), 400)
    _error(client.post("/v1/voices", data={"name": "nofile"}), 400, "file")
    _error(client.post("/v1/voices", files={"file": ("p.wav", wav, "audio/wav")}), 400, "name")
    _error(client.delete("/v1/voices/nobody"), 404)
    _error(client.delete("/v1/voices/default"), 400, "bundle")
    _error(client.delete("/v1/voices/a..b"), 400)
    assert _store_files(store) == before == []


def test_voices_are_added_used_listed_and_deleted(client, store):
    added = client.post("/v1/voices", data={"name": "kal", "text": TRANSCRIPT},
                        files={"file": ("kal.wav", EXAMPLE_WAV.read_bytes(), "audio/wav")})
    assert added.status_code == 201, added.text
    assert added.json()["mode"] == "transcript" and added.json()["seconds"] > 1
    listed = {v["id"]: v for v in client.get("/v1/voices").json()["data"]}
    assert listed["default"]["source"] == "bundle" and listed["kal"]["source"] == "saved"
    assert listed["kal"]["text"] == TRANSCRIPT
    spoken = speak(client, voice="kal")
    assert spoken.status_code == 200 and spoken.headers["x-voice-mode"] == "transcript"
    _error(client.post("/v1/voices", data={"name": "kal"}, files={"file": ("k.wav", EXAMPLE_WAV.read_bytes())}),
           409, "exists")
    assert client.delete("/v1/voices/kal").json() == {"id": "kal", "object": "voice", "deleted": True}
    assert "kal" not in {v["id"] for v in client.get("/v1/voices").json()["data"]}
    assert _store_files(store) == []


def test_codec_encode_and_decode(client):
    synth = tiny_synth()
    audio = EXAMPLE_WAV.read_bytes()
    encoded = client.post("/v1/codec/encode", files={"file": ("speech.wav", audio)}, data={"codebooks": "2"})
    assert encoded.status_code == 200, encoded.text
    tokens = TokenFile.from_bytes(encoded.content)
    samples = sf.info(str(EXAMPLE_WAV)).frames
    assert tokens.num_codebooks == 2 and tokens.fingerprint == synth.codec.fingerprint
    assert tokens.frames == -(-samples // synth.codec.hop_length) and tokens.num_samples == samples
    decoded = client.post("/v1/codec/decode", files={"file": ("a.stok", encoded.content)},
                          data={"response_format": "flac"})
    assert decoded.status_code == 200 and decoded.headers["content-type"] == "audio/flac"
    wav, rate = sf.read(io.BytesIO(decoded.content))
    assert rate == 16000 and len(wav) == samples and np.abs(wav).max() > 0.01
    _error(client.post("/v1/codec/encode", files={"file": ("a.wav", b"nope" * 100)}), 400, "audio")
    _error(client.post("/v1/codec/encode", files={"file": ("a.wav", audio)}, data={"codebooks": "9"}), 400)
    _error(client.post("/v1/codec/decode", files={"file": ("a.stok", b"STOK" + b"\0" * 10)}), 400, "truncated")
    other = TokenFile(tokens.codes, "0" * 16, 16000, tokens.hop_length, tokens.bits, tokens.num_samples)
    _error(client.post("/v1/codec/decode", files={"file": ("a.stok", other.to_bytes())}), 400, "codec")
    _error(client.post("/v1/codec/decode", files={"file": ("a.stok", encoded.content)},
                       data={"response_format": "xyz"}), 400, "not supported")


def test_websocket_takes_text_in_pieces_and_sends_pcm_and_word_times(client):
    with client.websocket_connect("/v1/tts/stream") as ws:
        ws.send_json({"type": "start", "seed": 5, "speed": 1.2})
        ready = ws.receive_json()
        assert ready["type"] == "ready" and ready["sample_rate"] == 16000 and ready["encoding"] == "pcm_s16le"
        for piece in ("Hello the", "re. My fri", "end"):
            ws.send_json({"type": "text", "text": piece})
        ws.send_json({"type": "end"})
        pcm, words, spoken = b"", [], []
        while True:
            message = ws.receive()
            if message.get("bytes") is not None:
                pcm += message["bytes"]
                continue
            data = json.loads(message["text"])
            if data["type"] == "words":
                words += data["words"]
            elif data["type"] == "spoken":
                spoken.append(data)
            elif data["type"] == "done":
                break
            else:
                raise AssertionError(data)
    assert [s["text"] for s in spoken] == ["Hello there. ", "My friend"]
    seconds = len(pcm) / 2 / 16000
    assert seconds > 0 and data["audio_seconds"] == pytest.approx(seconds, abs=1e-3)
    first_end = spoken[0]["audio_seconds"]
    labels = [w["word"] for w in words]
    assert labels[:2] == ["Hello", "there"] and labels[2:] == ["My", "friend"][: len(labels) - 2]
    assert all(w["start"] <= w["end"] <= seconds + 1e-3 for w in words)
    assert all(w["start"] >= first_end - 1e-3 for w in words[2:])  # the second piece's times follow the first's


def test_websocket_errors_close_the_session(client):
    with client.websocket_connect("/v1/tts/stream") as ws:
        ws.send_json({"type": "start", "voice": "../x"})
        error = ws.receive_json()
        assert error["type"] == "error" and error["error"]["param"] == "voice"
    with client.websocket_connect("/v1/tts/stream") as ws:
        ws.send_json({"type": "start"})
        ws.receive_json()
        ws.send_json({"type": "text", "text": "x" * 301})
        assert "limit" in ws.receive_json()["error"]["message"]


def test_api_key_guards_everything_but_health_and_the_page(store):
    app = create_app(server_config(store, api_key="s3cret"), tiny_synth())
    with TestClient(app) as c:
        assert c.get("/healthz").json()["status"] == "ok"
        assert c.get("/").status_code == 200 and c.get("/static/app.js").status_code == 200
        for method, path in (("get", "/v1/voices"), ("post", "/v1/audio/speech"), ("get", "/metrics"),
                             ("post", "/v1/codec/encode"), ("delete", "/v1/voices/x")):
            error = _error(getattr(c, method)(path), 401, "api key")
            assert error["type"] == "authentication_error"
        _error(c.get("/v1/voices", headers={"Authorization": "Bearer wrong"}), 401)
        assert c.get("/v1/voices", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        with pytest.raises(Exception), c.websocket_connect("/v1/tts/stream") as ws:  # noqa: B017
            ws.receive_json()
        with c.websocket_connect("/v1/tts/stream?api_key=s3cret") as ws:
            ws.send_json({"type": "end"})
            assert ws.receive_json()["type"] == "ready"


def test_metrics_and_page(client):
    speak(client)
    speak(client, input="")
    text = client.get("/metrics").text
    assert re.search(r'sonorant_requests_total\{endpoint="/v1/audio/speech",status="200"\} [1-9]', text)
    assert re.search(r'sonorant_requests_total\{endpoint="/v1/audio/speech",status="400"\} [1-9]', text)
    assert re.search(r"sonorant_first_audio_seconds_count [1-9]", text)
    assert re.search(r"sonorant_real_time_factor_count [1-9]", text)
    assert "sonorant_queue_depth 0.0" in text and "sonorant_active_syntheses 0.0" in text
    page = client.get("/")
    assert page.status_code == 200 and 'id="speak"' in page.text and "/static/app.js" in page.text
    assert client.get("/static/app.js").headers["content-type"].startswith(("text/javascript",
                                                                            "application/javascript"))


def test_cli_serve_warns_off_loopback_and_fails_in_one_line(tmp_path, capsys):
    from sonorant.cli.app import main

    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--host", "0.0.0.0", "--model", str(tmp_path / "missing")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2
    assert err[0].startswith("sonorant: warning: listening on 0.0.0.0") and "no --api-key" in err[0]
    assert len(err) == 2 and err[1].startswith("sonorant: error:") and "missing" in err[1]
