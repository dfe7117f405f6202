"""The HTTP teacher against a server that misbehaves in every way a flaky network or a hostile
host can: each answer is a TeacherError with its reason (never another exception), bounded in
time and size, and the API key never leaves for another origin."""

from __future__ import annotations

import json
import re
import socketserver
import time
from contextlib import contextmanager
from typing import ClassVar

import pytest

from helpers import TINY_MODEL, serving_in_thread
from skillvet.skills.teacher import HttpTeacher, TeacherError, is_loopback

GOOD = json.dumps(
    {"choices": [{"message": {"content": "Title: A\nWhen: b\nProcedure: c"}}]}
).encode()


def _response(status: str, body: bytes, length: int | None = None, extra: str = "") -> bytes:
    n = len(body) if length is None else length
    return (
        (
            f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {n}\r\n{extra}\r\n"
        ).encode()
        + body
    )


class _Misbehaving(socketserver.BaseRequestHandler):
    """Answers each request the way `mode` says; records the headers it was sent."""

    mode = "good"
    seen: ClassVar[list] = []
    redirect_to = ""

    def handle(self) -> None:  # noqa: C901
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        headers = dict(
            line.split(": ", 1) for line in head.decode().split("\r\n")[1:] if ": " in line
        )
        want = int(headers.get("Content-Length", "0"))
        while len(body) < want:
            body += self.request.recv(65536)
        type(self).seen.append(headers)
        mode = type(self).mode
        send = self.request.sendall
        try:
            if mode == "good":
                send(_response("200 OK", GOOD))
            elif mode == "not_utf8":
                send(_response("200 OK", b'{"choices": "\xff\xfe\xfa"}'))
            elif mode == "deep_json":
                send(_response("200 OK", b"[" * 200_000 + b"]" * 200_000))
            elif mode == "bad_status":
                send(b"HTCPCP/9 teapot\r\n\r\n")
            elif mode == "short_body":
                send(_response("200 OK", GOOD[:10], length=len(GOOD)))
            elif mode == "drip":
                send(f"HTTP/1.1 200 OK\r\nContent-Length: {len(GOOD)}\r\n\r\n".encode())
                for byte in GOOD:
                    send(bytes([byte]))
                    time.sleep(0.3)
            elif mode == "huge":
                send(_response("200 OK", b" " * 3_000_000))
            elif mode == "huge_undeclared":
                send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
                for _ in range(40):
                    send(b" " * 100_000)
            elif mode == "redirect":
                send(_response("302 Found", b"", extra=f"Location: {type(self).redirect_to}\r\n"))
        except (BrokenPipeError, ConnectionResetError):
            pass


def _tcp_server(handler: type[socketserver.BaseRequestHandler]) -> socketserver.TCPServer:
    """A threaded TCP server on a free local port; its request threads never hold up exit."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    return server


@contextmanager
def serving(mode: str):
    class Handler(_Misbehaving):
        pass

    Handler.mode, Handler.seen = mode, []
    with serving_in_thread(_tcp_server(Handler)) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", Handler


MISBEHAVIOURS = {
    "not_utf8": "not JSON",
    "deep_json": "not JSON",
    "bad_status": "BadStatusLine",
    "short_body": "not JSON|IncompleteRead",
    "drip": "timed out",
    "huge": "over the limit",
    "huge_undeclared": "more than",
    "redirect": "redirects are not followed",
}


@pytest.mark.parametrize("mode", sorted(MISBEHAVIOURS))
def test_every_misbehaviour_is_a_teacher_error_with_its_reason(mode):
    with serving(mode) as (url, _):
        teacher = HttpTeacher(url, "m", timeout=1.5, retries=0, max_bytes=1_000_000)
        t0 = time.monotonic()
        with pytest.raises(TeacherError, match=MISBEHAVIOURS[mode]):
            teacher.complete("hello")
        assert time.monotonic() - t0 < 4  # one attempt's deadline bounds even a dripping server


def test_a_good_answer_still_comes_through():
    with serving("good") as (url, handler):
        assert HttpTeacher(url, "m", timeout=5, retries=0).complete("hello").startswith("Title: A")
        assert "Authorization" not in handler.seen[0]  # no key variable named: no key sent


def test_the_key_goes_to_the_configured_origin_only(monkeypatch):
    monkeypatch.setenv("SKILLVET_TEST_KEY", "sekrit")
    with serving("good") as (elsewhere, other), serving("redirect") as (url, first):
        first.redirect_to = elsewhere + "/chat/completions"
        with pytest.raises(TeacherError, match="redirect"):
            HttpTeacher(url, "m", key_env="SKILLVET_TEST_KEY", timeout=2, retries=0).complete(
                "hello"
            )
        assert first.seen[0]["Authorization"] == "Bearer sekrit"
        assert other.seen == []  # the redirect was not followed, so the key went nowhere else
    with pytest.raises(ValueError, match="plain http"):
        HttpTeacher("http://example.org/v1", "m", key_env="SKILLVET_TEST_KEY")
    HttpTeacher("https://example.org/v1", "m", key_env="SKILLVET_TEST_KEY")  # https is fine
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("10.0.0.1") and not is_loopback("example.org")


class _Cycling(_Misbehaving):
    """Misbehaves in each way of MISBEHAVIOURS in turn, one per request."""

    modes: ClassVar[list[str]] = sorted(MISBEHAVIOURS)
    calls = 0

    def handle(self) -> None:
        type(self).mode = self.modes[type(self).calls % len(self.modes)]
        type(self).calls += 1
        super().handle()


def test_a_sapo_run_against_a_misbehaving_teacher_completes_with_one_fallback_event_per_failure(
    tmp_path,
):
    pytest.importorskip("transformers")
    from skillvet.config import load_config
    from skillvet.skills.bank import Bank
    from skillvet.train import start_run, train

    _Cycling.calls, _Cycling.seen = 0, []
    with serving_in_thread(_tcp_server(_Cycling)) as server:
        _Cycling.redirect_to = f"http://127.0.0.1:{server.server_address[1]}/elsewhere"
        cfg = load_config(
            None,
            [
                *TINY_MODEL,
                "sft.steps=2",
                "sft.tasks=8",
                "sft.batch_size=8",
                "sft.val_tasks=2",
                "train.tasks_per_iteration=4",
                "train.group_size=2",
                "train.micro_batch_size=16",
                "env.max_steps=3",
                "eval.tasks=2",
                "eval.before=false",
                "sampling.max_action_tokens=8",
                "skills.enabled=true",
                "skills.cluster_size=2",
                "skills.promote_every=2",
                "train.iterations=4",
                "skills.writer=teacher",
                "skills.teacher=http",
                "skills.teacher_retries=0",
                "skills.teacher_timeout=1",
                f"skills.teacher_url=http://127.0.0.1:{server.server_address[1]}/v1",
                "skills.teacher_max_bytes=1000000",
            ],
        )
        train(start_run(cfg, quiet=True, run_dir=tmp_path / "run"))
    assert _Cycling.calls == 8  # 2 clusters x 4 iterations, each misbehaving in its own way
    bank = Bank(tmp_path / "run" / "skills.sqlite", read_only=True)
    fallbacks = [
        e["reason"]
        for e in bank.events()
        if e["kind"] == "candidate" and "teacher failed" in e["reason"]
    ]
    bank.close()
    assert len(fallbacks) == 8
    for mode, says in MISBEHAVIOURS.items():
        assert any(re.search(says, r) for r in fallbacks), mode
