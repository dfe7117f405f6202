"""`skillvet serve`: a skillvet model behind an OpenAI-compatible chat-completions API.

    POST /v1/chat/completions   {"model", "messages", "max_tokens", "temperature", "stop"}
    GET  /v1/models

Messages go through the model's own chat template; generation is the policy's sampling loop
(greedy at temperature 0), one request at a time. Only a `stop` of "</action>" is honoured as a
stop string (the agent's format); answers otherwise end at end of turn or `max_tokens`. Every
failure gets a JSON error body (OpenAI's shape): 400 for a bad field or a prompt longer than the
model's context, 401 without the `--api-key`, 413 for a body over 1 MB, 500 for anything else.
A client that stops sending mid-request is cut off after `timeout` seconds. This is what the
HTTP teacher talks to in tests, and a way to put a trained agent behind an API.
"""

from __future__ import annotations

import hmac
import json
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch

from skillvet.policy.hf import STOP_TEXT, Policy

MAX_BODY = 1_000_000
"""Largest request body read (bytes); a larger one is answered 413 unread."""


def _validated(request: object, max_tokens_limit: int) -> dict:
    """The request's fields, checked; ValueError says what is wrong."""
    if not isinstance(request, dict):
        raise ValueError("the body must be a JSON object")
    messages = request.get("messages")
    if (
        not isinstance(messages, list)
        or not messages
        or not all(
            isinstance(m, dict)
            and isinstance(m.get("content"), str)
            and m.get("role") in ("system", "user", "assistant")
            for m in messages
        )
    ):
        raise ValueError("messages must be a non-empty list of {role, content}")
    max_tokens = request.get("max_tokens") or 256
    if (
        isinstance(max_tokens, bool)
        or not isinstance(max_tokens, int)
        or not 1 <= max_tokens <= max_tokens_limit
    ):
        raise ValueError(f"max_tokens must be an integer in [1, {max_tokens_limit}]")
    temperature = request.get("temperature", 1.0)
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not math.isfinite(temperature)
    ):
        raise ValueError("temperature must be a number")
    if not (temperature == 0 or 1e-3 <= temperature <= 100):
        raise ValueError("temperature must be 0 (greedy) or in [0.001, 100]")
    seed = request.get("seed")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63
    ):
        raise ValueError("seed must be an integer in [0, 2**63)")
    stop = request.get("stop")
    if (
        stop is not None
        and not isinstance(stop, str)
        and not (isinstance(stop, list) and all(isinstance(x, str) for x in stop))
    ):
        raise ValueError("stop must be a string or a list of strings")
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    return {
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": float(temperature),
        "seed": seed,
        "stops": stops,
    }


@dataclass
class _Backend:
    """What the request handlers share: the policy behind the API and the server's limits."""

    policy: Policy
    model_name: str
    max_tokens_limit: int
    api_key: str | None
    timeout: float
    """Seconds a client gets for each read of its request."""
    context: int
    """The model's context in tokens (0: unknown, not checked)."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    """One generation at a time."""

    def generate(self, ids: list[int], fields: dict):
        seed = fields["seed"]
        generator = None
        if seed is not None:
            generator = torch.Generator(device=self.policy.device).manual_seed(seed)
        stop_text = STOP_TEXT if STOP_TEXT in fields["stops"] else None
        with self.lock:
            return self.policy.generate(
                [ids], fields["max_tokens"], fields["temperature"], generator, stop_text=stop_text
            )[0]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], backend: _Backend) -> None:
        self.backend = backend
        super().__init__(address, _Handler)


def _completion(model_name: str, ids: list[int], gen) -> dict:
    """The chat.completion body of one generated answer to a prompt of `ids`."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": gen.text},
                "finish_reason": "stop" if gen.finish in ("stop", "eos") else "length",
            }
        ],
        "usage": {
            "prompt_tokens": len(ids),
            "completion_tokens": len(gen.ids),
            "total_tokens": len(ids) + len(gen.ids),
        },
    }


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def setup(self) -> None:
        # a half-sent request holds its thread for this long at most
        self.timeout = self.server.backend.timeout
        super().setup()

    def log_message(self, format: str, *args) -> None:  # quiet: one line per request below
        pass

    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, code: int, message: str) -> None:
        kind = "invalid_request_error" if code < 500 else "server_error"
        self._send(code, {"error": {"message": message, "type": kind, "code": code}})

    def _authorized(self) -> bool:
        key = self.server.backend.api_key
        given = self.headers.get("Authorization", "")
        if key is None or hmac.compare_digest(given, f"Bearer {key}"):
            return True
        self._error(401, "a valid 'Authorization: Bearer <key>' header is required")
        return False

    def do_GET(self) -> None:
        if not self._authorized():
            return
        if self.path.rstrip("/") == "/v1/models":
            name = self.server.backend.model_name
            model = {"id": name, "object": "model", "owned_by": "skillvet"}
            self._send(200, {"object": "list", "data": [model]})
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:
        try:
            self._post()
        except (TimeoutError, ConnectionError):
            self.close_connection = True
        except Exception as err:  # never a traceback and a dropped connection: a JSON 500
            self._error(500, f"internal error: {type(err).__name__}: {err}")

    def _post(self) -> None:
        if not self._authorized():
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._error(404, f"no route {self.path}")
            return
        fields = self._read_fields()
        if fields is None:
            return
        backend = self.server.backend
        text = backend.policy.tokenizer.apply_chat_template(
            [{"role": m["role"], "content": m["content"]} for m in fields["messages"]],
            tokenize=False,
            add_generation_prompt=True,
        )
        ids = backend.policy.tokenizer(text, add_special_tokens=False)["input_ids"]
        if backend.context and len(ids) + fields["max_tokens"] > backend.context:
            self._error(
                400,
                f"the prompt ({len(ids)} tokens) and max_tokens "
                f"({fields['max_tokens']}) exceed the model's context of "
                f"{backend.context} tokens",
            )
            return
        gen = backend.generate(ids, fields)
        self._send(200, _completion(backend.model_name, ids, gen))

    def _read_fields(self) -> dict | None:
        """The request body's fields, validated; None once an error is answered or the client
        went away."""
        declared = self.headers.get("Content-Length", "0")
        if not declared.isdigit():
            self._error(400, "bad request: Content-Length must be a number")
            return None
        if int(declared) > MAX_BODY:
            self.close_connection = True
            self._error(413, f"request body of {declared} bytes is over the limit of {MAX_BODY}")
            return None
        body = self.rfile.read(int(declared))
        if len(body) < int(declared):
            self.close_connection = True
            return None  # the client went away mid-body
        try:
            return _validated(json.loads(body or b"{}"), self.server.backend.max_tokens_limit)
        except (ValueError, RecursionError) as err:
            self._error(400, f"bad request: {err}")
            return None


def make_server(
    policy: Policy,
    model_name: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_tokens_limit: int = 1024,
    api_key: str | None = None,
    timeout: float = 30.0,
) -> ThreadingHTTPServer:
    """The server, not yet serving. With `api_key`, a request must carry
    `Authorization: Bearer KEY`. A client gets `timeout` seconds for each read of its request,
    then the connection is closed."""
    context = int(getattr(policy.model.config, "max_position_embeddings", 0) or 0)
    backend = _Backend(policy, model_name, max_tokens_limit, api_key, timeout, context)
    return _Server((host, port), backend)
