"""One JSON object per line on stdout (kept cheap: it runs once per request)."""

from __future__ import annotations

import json
import sys
import traceback
from datetime import datetime, timezone
from typing import Any, Optional, TextIO

LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "WARN": 30, "ERROR": 40, "CRITICAL": 50}


def utc_iso(moment: Optional[datetime] = None) -> str:
    moment = moment or datetime.now(timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonLogger:
    def __init__(self, service: str, level: str = "INFO", stream: Optional[TextIO] = None):
        self.service = service
        self.threshold = LEVELS.get(str(level).upper(), 20)
        self._stream = stream

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stdout

    def log(self, level: str, message: str, exc: Optional[BaseException] = None, **fields: Any) -> None:
        if LEVELS.get(level, 20) < self.threshold:
            return
        record = {"ts": utc_iso(), "level": level.lower(), "service": self.service, "msg": message}
        record.update(fields)
        if exc is not None:
            record["error"] = f"{exc.__class__.__name__}: {exc}"
            record["traceback"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        try:
            self.stream.write(json.dumps(record, default=str, separators=(",", ":")) + "\n")
        except (OSError, ValueError):  # closed stdout: never break a request over a log line
            pass

    def debug(self, message: str, **fields: Any) -> None:
        self.log("DEBUG", message, **fields)

    def info(self, message: str, **fields: Any) -> None:
        self.log("INFO", message, **fields)

    def warning(self, message: str, **fields: Any) -> None:
        self.log("WARNING", message, **fields)

    def error(self, message: str, exc: Optional[BaseException] = None, **fields: Any) -> None:
        self.log("ERROR", message, exc=exc, **fields)
