"""``ws`` steps: send a JSON frame on the user's WebSocket, wait for the frame that ``expect`` matches."""

from __future__ import annotations

import time
from typing import Any

from loadstack.chains.engine import ChainRun, Mismatch, StepFailed
from loadstack.chains.kinds.base import Builder, Step
from loadstack.chains.schema import WsStepSpec
from loadstack.chains.templates import Expression, TemplateError, compile_value
from loadstack.users.base import RequestFailure


class WsStep(Step[WsStepSpec]):
    kind, request_type = "ws", "WS"

    def __init__(self, spec: WsStepSpec, builder: Builder) -> None:
        super().__init__(spec, builder)
        self.path = spec.ws.path
        self.send = compile_value(spec.ws.send)
        self.until = Expression(spec.ws.expect)
        self.timeout = spec.ws.timeout

    def templates(self) -> list[Any]:
        return [self.send]

    def execute(self, run: ChainRun) -> None:
        ws = run.rt.ws
        name = run.stat_name(self.name)
        if not ws.connected:
            try:
                ws.connect(self.path, name=f"{name}/connect")
            except RequestFailure as failure:
                raise StepFailed(self.name, failure.message) from None
        payload = self.render(run, self.send)

        def op() -> Any:
            ws.send_json(payload)
            deadline = time.monotonic() + self.timeout
            seen = 0
            while time.monotonic() < deadline:
                frame, _ = ws.recv_json(deadline - time.monotonic())
                seen += 1
                try:
                    matched = self.until(run.scope(message=frame))
                except TemplateError:
                    matched = False
                if matched:
                    self.finish(run, {"message": frame})
                    return frame
            raise Mismatch(
                f"no frame matching `{self.until.source}` within {self.timeout:.1f}s ({seen} frames seen)"
            )

        self.run_client(run, ws, op, ws.ws_span("send", name))
