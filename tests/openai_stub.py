"""A stub OpenAI-compatible server on 127.0.0.1 for the openai backend's tests (no model, no network).

Answers ``/v1/chat/completions`` and ``/v1/completions`` deterministically: the answer to a prompt is
``"echo: <first 3 words>"`` (a sampled request appends ``#<seed>``), three "tokens" with log-probs -0.5, -0.25
and -0.125, and usage counts ``len(prompt.split())`` prompt tokens. It records every request (path, body,
Authorization header), the most requests in flight at once, and can fail the next N requests with a status code
or answer after a delay.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LOGPROBS = [-0.5, -0.25, -0.125]


class StubState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.fail_next: list[int] = []  # status codes of the next requests to fail
        self.delay = 0.0
        self.require_key: str | None = None
        self.logprobs = True


def answer_for(prompt: str, body: dict[str, Any]) -> str:
    text = "echo: " + " ".join(prompt.split()[:3])
    if float(body.get("temperature") or 0) > 0:
        text += f"#{body.get('seed')}"
    return text


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        st = self.server.state
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        with st.lock:
            st.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
            st.in_flight += 1
            st.max_in_flight = max(st.max_in_flight, st.in_flight)
            fail = st.fail_next.pop(0) if st.fail_next else None
        try:
            if st.delay:
                time.sleep(st.delay)
            if st.require_key is not None and self.headers.get("Authorization") != f"Bearer {st.require_key}":
                self._send(401, {"error": {"message": "invalid api key", "type": "auth"}})
                return
            if fail is not None:
                self._send(fail, {"error": {"message": "try again", "type": "server"}}, {"retry-after-ms": "10"})
                return
            chat = self.path.endswith("/chat/completions")
            prompt = body["messages"][-1]["content"] if chat else body["prompt"]
            text = answer_for(prompt, body)
            usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(LOGPROBS),
                     "total_tokens": len(prompt.split()) + len(LOGPROBS)}
            if chat:
                logprobs = ({"content": [{"token": f"t{i}", "logprob": lp, "bytes": None, "top_logprobs": []}
                                         for i, lp in enumerate(LOGPROBS)]} if st.logprobs and body.get("logprobs")
                            else None)
                choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
                          "logprobs": logprobs}
                obj = "chat.completion"
            else:
                logprobs = ({"tokens": [f"t{i}" for i in range(3)], "token_logprobs": LOGPROBS,
                             "text_offset": [0, 1, 2], "top_logprobs": None}
                            if st.logprobs and body.get("logprobs") is not None else None)
                choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": logprobs}
                obj = "text_completion"
            self._send(200, {"id": "stub-1", "object": obj, "created": 0, "model": body.get("model", ""),
                             "choices": [choice], "usage": usage})
        finally:
            with st.lock:
                st.in_flight -= 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: StubState


class StubServer:
    """``with StubServer() as stub: stub.base_url ...`` (a thread serving 127.0.0.1 on a free port)."""

    def __init__(self) -> None:
        self.state = StubState()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = self.state
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> StubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
