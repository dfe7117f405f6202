"""A teacher over an OpenAI-compatible chat-completions API.

    teacher = HttpTeacher(base_url, model, key_env="OPENAI_API_KEY", timeout=30, retries=2)
    answer = teacher.complete(prompt)        # raises TeacherError after the last retry

Plain HTTP from the standard library. A call that times out, cannot connect, or gets a 5xx or
429 answer is retried after 1 s, 2 s, 4 s ...; a 4xx answer is not retried. The caller falls
back to the rule inducer on `TeacherError` and logs why (`skillvet.skills.sapo`).
`skillvet serve` answers the same API, so this path is tested over real HTTP.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request

SYSTEM = "You write short, reusable skills for agents in text worlds, from their trajectories."


class TeacherError(RuntimeError):
    """The API gave no usable answer; the message says why."""


class HttpTeacher:
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        key_env: str = "OPENAI_API_KEY",
        timeout: float = 30.0,
        retries: int = 2,
        max_tokens: int = 200,
        backoff: float = 1.0,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.key = os.environ.get(key_env) or None
        self.timeout = timeout
        self.retries = retries
        self.max_tokens = max_tokens
        self.backoff = backoff

    def complete(self, prompt: str) -> str:
        """The assistant's answer to `prompt` (one user message after the system message)."""
        body = json.dumps({
            "model": self.model,
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
            "temperature": 0,
            "max_tokens": self.max_tokens,
        }).encode()
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    data = json.loads(response.read().decode())
            except urllib.error.HTTPError as err:
                last = f"HTTP {err.code} from {self.url}"
                if err.code != 429 and err.code < 500:
                    break
                continue
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
                reason = getattr(err, "reason", err)
                last = f"no answer from {self.url}: {reason}"
                continue
            except json.JSONDecodeError:
                last = f"{self.url} answered with something that is not JSON"
                continue
            try:
                content = data["choices"][0]["message"]["content"]
            except (KeyError, IndexError, TypeError):
                last = f"{self.url} answered without choices[0].message.content"
                continue
            if not isinstance(content, str) or not content.strip():
                last = f"{self.url} answered with empty content"
                continue
            return content
        raise TeacherError(f"{last} (after {self.retries + 1} attempts)")
