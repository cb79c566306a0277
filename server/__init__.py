"""`sonorant serve`: an HTTP + WebSocket server (FastAPI, uvicorn) with an OpenAI-compatible speech
endpoint, saved voices, the codec, health and Prometheus metrics, and a web page. Needs the `server` extra."""

from .app import create_app
from .config import ServerConfig

__all__ = ["ServerConfig", "create_app"]
