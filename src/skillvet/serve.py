"""`skillvet serve`: a skillvet model behind an OpenAI-compatible chat-completions API.

    POST /v1/chat/completions   {"model", "messages", "max_tokens", "temperature", "stop"}
    GET  /v1/models

Messages go through the model's own chat template; generation is the policy's sampling loop
(greedy at temperature 0), one request at a time. Only a `stop` of "</action>" is honoured as a
stop string (the agent's format); answers otherwise end at end of turn or `max_tokens`. Bad
requests get a 400 with an OpenAI-style error body. This is what the HTTP teacher talks to in
tests, and a way to put a trained agent behind an API.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch

from skillvet.policy.hf import STOP_TEXT, Policy


def make_server(policy: Policy, model_name: str, host: str = "127.0.0.1", port: int = 8000, max_tokens_limit: int = 1024) -> ThreadingHTTPServer:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
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
            self._send(code, {"error": {"message": message, "type": "invalid_request_error", "code": code}})

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "skillvet"}]})
            else:
                self._error(404, f"no route {self.path}")

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._error(404, f"no route {self.path}")
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
                request = json.loads(self.rfile.read(length) or b"{}")
                messages = request["messages"]
                if not isinstance(messages, list) or not messages or not all(
                    isinstance(m, dict) and isinstance(m.get("content"), str) and m.get("role") in ("system", "user", "assistant")
                    for m in messages
                ):
                    raise ValueError("messages must be a non-empty list of {role, content}")
                max_tokens = int(request.get("max_tokens") or 256)
                if not 1 <= max_tokens <= max_tokens_limit:
                    raise ValueError(f"max_tokens must be in [1, {max_tokens_limit}]")
                temperature = float(request.get("temperature", 1.0))
                if temperature < 0:
                    raise ValueError("temperature must be >= 0")
                stop = request.get("stop")
                stops = [stop] if isinstance(stop, str) else list(stop or [])
            except (KeyError, ValueError, TypeError, json.JSONDecodeError) as err:
                self._error(400, f"bad request: {err}")
                return
            text = policy.tokenizer.apply_chat_template(
                [{"role": m["role"], "content": m["content"]} for m in messages], tokenize=False, add_generation_prompt=True
            )
            ids = policy.tokenizer(text, add_special_tokens=False)["input_ids"]
            seed = request.get("seed")
            generator = torch.Generator(device=policy.device).manual_seed(int(seed)) if seed is not None else None
            with lock:
                gen = policy.generate([ids], max_tokens, temperature, generator,
                                      stop_text=STOP_TEXT if STOP_TEXT in stops else None)[0]
            self._send(200, {
                "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model_name,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": gen.text},
                    "finish_reason": "stop" if gen.finish in ("stop", "eos") else "length",
                }],
                "usage": {"prompt_tokens": len(ids), "completion_tokens": len(gen.ids), "total_tokens": len(ids) + len(gen.ids)},
            })

    return ThreadingHTTPServer((host, port), Handler)
