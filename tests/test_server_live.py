"""The server on a real loopback socket (uvicorn in a thread): audio leaves while it is generated, a full
server answers 503, a client that leaves frees its slot, the OpenAI client works, and a bounded load test."""

from __future__ import annotations

import gc
import http.client
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("uvicorn")
from sonorant.server import create_app  # noqa: E402

from .server_util import live_server, post_json, reference, server_config, tiny_synth, wav_samples  # noqa: E402


def _body(text: str, seed: int = 1, **fields) -> bytes:
    return json.dumps({"model": "tts-1", "input": text, "seed": seed, **fields}).encode()


def _metric(host: str, port: int, name: str) -> float:
    connection = http.client.HTTPConnection(host, port, timeout=10)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    return float(re.search(rf"^{re.escape(name)} (\S+)$", text, re.M).group(1))


class GatedStream:
    """Wraps `Synthesizer.stream`: counts the LM frames generated, and after the first chunk waits until the
    client says it has audio bytes (or `timeout`) before generating more."""

    def __init__(self, synth, timeout: float = 20.0, delay: float = 0.0) -> None:
        self.original, self.timeout, self.delay = synth.stream, timeout, delay
        self.frames, self.received, self.waited_out = 0, threading.Event(), False

    def __call__(self, *args, **kwargs):
        for index, chunk in enumerate(self.original(*args, **kwargs)):
            self.frames = chunk.frames
            yield chunk
            if index == 0 and self.timeout:
                self.waited_out = not self.received.wait(self.timeout)
            time.sleep(self.delay)


def test_first_audio_bytes_leave_before_generation_ends(tmp_path, monkeypatch):
    synth = tiny_synth()
    gate = GatedStream(synth)
    monkeypatch.setattr(synth, "stream", gate)
    with live_server(create_app(server_config(tmp_path), synth)) as (host, port):
        response = post_json(host, port, "/v1/audio/speech", _body("The quick brown fox.")).getresponse()
        assert response.status == 200 and response.getheader("Transfer-Encoding") == "chunked"
        first = response.read1(65536)
        frames_at_first_bytes = gate.frames
        gate.received.set()
        rest = response.read()
    assert not gate.waited_out  # the client had audio while generation was held after its first chunk
    assert len(first) > 44 and frames_at_first_bytes == 2  # header + the first two frames' audio
    assert gate.frames > frames_at_first_bytes  # ...and generation went on after that
    samples = wav_samples(first + rest)
    assert len(samples) == gate.frames * synth.codec.hop_length


def test_a_full_server_answers_503_and_a_client_that_leaves_frees_its_slot(tmp_path, monkeypatch):
    synth = tiny_synth()
    slow = GatedStream(synth, timeout=0, delay=0.3)  # a long generation: 0.3 s per chunk
    monkeypatch.setattr(synth, "stream", slow)
    app = create_app(server_config(tmp_path, max_concurrent=1, max_queue=0, max_seconds=30.0), synth)
    with live_server(app) as (host, port):
        leaving = post_json(host, port, "/v1/audio/speech", _body("Slowly. " * 30))
        response = leaving.getresponse()
        assert response.status == 200 and response.read1(65536)
        busy = post_json(host, port, "/v1/audio/speech", _body("Hi.")).getresponse()
        assert busy.status == 503 and int(busy.getheader("Retry-After")) >= 1
        assert json.loads(busy.read())["error"]["code"] == "overloaded"
        assert _metric(host, port, "sonorant_active_syntheses") == 1
        leaving.sock.shutdown(2)
        leaving.close()
        left = time.monotonic()
        while _metric(host, port, "sonorant_active_syntheses") != 0:
            assert time.monotonic() - left < 3, "the slot of a client that left was not freed"
            time.sleep(0.05)
        monkeypatch.setattr(synth, "stream", slow.original)
        again = post_json(host, port, "/v1/audio/speech", _body("Hi.")).getresponse()
        assert again.status == 200 and len(again.read()) > 44
        assert _metric(host, port, 'sonorant_requests_total{endpoint="/v1/audio/speech",status="503"}') == 1


def test_the_openai_client_speaks_through_base_url(tmp_path):
    openai = pytest.importorskip("openai")
    synth = tiny_synth()
    with live_server(create_app(server_config(tmp_path), synth)) as (host, port):
        client = openai.OpenAI(base_url=f"http://{host}:{port}/v1", api_key="unused", max_retries=0)
        out = tmp_path / "speech.wav"
        with client.audio.speech.with_streaming_response.create(model="tts-1", voice="default", input="Hello there.",
                                                                response_format="wav") as response:
            response.stream_to_file(out)
        assert len(wav_samples(out.read_bytes())) > 0
        with pytest.raises(openai.BadRequestError, match="unknown voice"):
            client.audio.speech.create(model="tts-1", voice="alloy", input="Hello.")


def _rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


@pytest.mark.slow
def test_load_16_clients_every_request_answered_none_mixed_up(tmp_path):
    """16 clients x 4 requests on loopback: each gets its own audio (200) or a clean 503; nothing hangs, and
    memory comes back near where it started."""
    synth = tiny_synth()
    jobs = [("Hello there.", 11), ("The quick brown fox.", 12), ("How much is it?", 13), ("Zebras vexed me.", 14)]
    with ThreadPoolExecutor(len(jobs)) as pool:  # threads give what one-by-one gives (test_stream_state)
        expected = list(pool.map(lambda job: reference(synth, *job, max_seconds=0.2), jobs))
    app = create_app(server_config(tmp_path, max_concurrent=2, max_queue=4, max_seconds=0.2), synth)
    with live_server(app) as (host, port):
        def client(number: int, requests: int = 4) -> list[tuple[int, int, bytes]]:
            out = []
            for request in range(requests):
                job = (number + request) % len(jobs)
                connection = post_json(host, port, "/v1/audio/speech", _body(*jobs[job]), timeout=120)
                response = connection.getresponse()
                out.append((job, response.status, response.read()))
                if response.status == 503:
                    assert response.getheader("Retry-After")
                connection.close()
            return out

        client(0, requests=1)  # warm up: the first request allocates what later ones reuse
        gc.collect()
        baseline = _rss_mb()
        start = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            results = [r for batch in pool.map(client, range(16)) for r in batch]
        elapsed = time.monotonic() - start
        assert _metric(host, port, "sonorant_active_syntheses") == 0
        assert _metric(host, port, "sonorant_queue_depth") == 0
    assert len(results) == 64 and elapsed < 240
    statuses = [status for _, status, _ in results]
    assert set(statuses) == {200, 503}, statuses  # some served, some turned away, nothing else
    for job, status, body in results:
        if status == 200:
            assert np.array_equal(wav_samples(body), expected[job])  # its own audio, not another request's
        else:
            assert json.loads(body)["error"]["code"] == "overloaded"
    gc.collect()
    grown = _rss_mb() - baseline
    print(f"load: {statuses.count(200)} x 200, {statuses.count(503)} x 503 in {elapsed:.1f} s; RSS {grown:+.0f} MB")
    assert grown < 200
