"""A teacher over an OpenAI-compatible chat-completions API.

    teacher = HttpTeacher(base_url, model, key_env="MY_KEY", timeout=30, retries=2)
    answer = teacher.complete(prompt)        # raises TeacherError after the last retry

Plain HTTP(S) from the standard library (`http.client`). Every way a call can fail ends in
`TeacherError` with the reason, and the caller falls back to the rule inducer and logs why
(`skillvet.skills.sapo`); nothing else escapes `complete`. A call that times out, cannot
connect, breaks off or gets a 5xx or 429 answer is retried after 1 s, 2 s, 4 s ...; a 4xx
answer is not retried.

Limits a misbehaving server cannot get around:
- `timeout` bounds a whole attempt (connect, send, every read), not each socket read: a server
  that drips one byte at a time is cut off at the deadline.
- The answer body is read to at most `max_bytes`; a longer one is refused unread.
- Redirects are never followed (a 3xx is a failure): the request, and the key with it, goes
  to the configured origin only.
- The API key is read from the environment variable the config names (none by default) and
  is never sent over plain http to a host other than this machine (loopback).
`skillvet serve` answers the same API, so this path is tested over real HTTP.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import time
import urllib.parse

SYSTEM = "You write short, reusable skills for agents in text worlds, from their trajectories."


class TeacherError(RuntimeError):
    """The API gave no usable answer; the message says why."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _Retry(Exception):
    """An attempt failed in a way worth another attempt."""


class _Final(Exception):
    """An attempt failed in a way another attempt would repeat."""


class HttpTeacher:
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        key_env: str = "",
        timeout: float = 30.0,
        retries: int = 2,
        max_tokens: int = 200,
        backoff: float = 1.0,
        max_bytes: int = 1_000_000,
    ) -> None:
        parsed = urllib.parse.urlsplit(base_url.rstrip("/") + "/chat/completions")
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(
                f"the teacher URL must be http(s)://host[:port]/path, got {base_url!r}"
            )
        self.url = parsed.geturl()
        self._scheme, self._host, self._port = parsed.scheme, parsed.hostname, parsed.port
        self._path = parsed.path + (f"?{parsed.query}" if parsed.query else "")
        self.model = model
        self.key = (os.environ.get(key_env) or None) if key_env else None
        if self.key and self._scheme == "http" and not is_loopback(self._host):
            raise ValueError(
                f"refusing to send the API key in {key_env} over plain http to {self._host}; "
                "use an https URL (or a teacher on this machine)"
            )
        self.timeout = timeout
        self.retries = retries
        self.max_tokens = max_tokens
        self.backoff = backoff
        self.max_bytes = max_bytes

    def complete(self, prompt: str) -> str:
        """The assistant's answer to `prompt` (one user message after the system message)."""
        body = json.dumps(
            {
                "model": self.model,
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": prompt},
                ],
                "temperature": 0,
                "max_tokens": self.max_tokens,
            }
        ).encode()
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                return self._attempt(body)
            except _Retry as err:
                last = str(err)
            except _Final as err:
                last = str(err)
                break
        raise TeacherError(f"{last} (after {attempt + 1} attempt{'s' if attempt else ''})")

    def _attempt(self, body: bytes) -> str:
        deadline = time.monotonic() + self.timeout
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        kind = (
            http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        )
        conn = kind(self._host, self._port, timeout=self.timeout)
        try:
            conn.request("POST", self._path, body=body, headers=headers)
            _bound(conn, deadline)
            response = conn.getresponse()
            status = response.status
            raw = self._read(conn, response, deadline)
        except TimeoutError as err:
            raise _Retry(f"no answer from {self.url}: timed out after {self.timeout:g} s") from err
        except (
            OSError,
            http.client.HTTPException,
        ) as err:  # refused, reset, bad status line, short body
            raise _Retry(f"no answer from {self.url}: {type(err).__name__}: {err}") from err
        finally:
            conn.close()
        if 300 <= status < 400:
            raise _Final(f"HTTP {status} from {self.url}: redirects are not followed")
        if status == 429 or status >= 500:
            raise _Retry(f"HTTP {status} from {self.url}")
        if status >= 400:
            raise _Final(f"HTTP {status} from {self.url}")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as err:
            raise _Retry(
                f"{self.url} answered with something that is not JSON ({type(err).__name__})"
            ) from err
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as err:
            raise _Retry(f"{self.url} answered without choices[0].message.content") from err
        if not isinstance(content, str) or not content.strip():
            raise _Retry(f"{self.url} answered with empty content")
        return content

    def _read(
        self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse, deadline: float
    ) -> bytes:
        declared = response.getheader("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise _Final(
                f"{self.url} answered {declared} bytes, over the limit of {self.max_bytes}"
            )
        chunks, size = [], 0
        while True:
            _bound(conn, deadline)
            chunk = response.read1(65536)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.max_bytes:
                raise _Final(f"{self.url} answered more than {self.max_bytes} bytes")
            chunks.append(chunk)


def _bound(conn: http.client.HTTPConnection, deadline: float) -> None:
    """Let the next socket operation wait only until the attempt's deadline."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    if conn.sock is not None:
        conn.sock.settimeout(left)
