"""A thread that notices when plugin code blocks the event loop, and says which plugin.

The event loop is pinged from a thread; when a ping stays unanswered for longer than the
threshold, the loop thread's stack is read (``sys._current_frames``) and the innermost frame
that belongs to a plugin's module names the culprit. A blocked loop sends no heartbeats, so
its attempts may be redelivered: the warning says so and what to do instead.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from types import FrameType

log = logging.getLogger("dvp_scheduler.executor")


def find_culprit(frame: FrameType | None, plugin_modules: Mapping[str, str]) -> str | None:
    """Describe the innermost frame of ``frame``'s stack whose module is a plugin's."""
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        plugin = plugin_modules.get(module)
        if plugin is not None:
            code = frame.f_code
            return f"plugin {plugin!r} ({code.co_filename}:{frame.f_lineno} in {code.co_name})"
        frame = frame.f_back
    return None


class LoopWatchdog:
    """Warn when the event loop of the current thread is blocked for ``threshold`` seconds.

    ``plugin_modules`` returns the current ``{module name: plugin name}`` map (it changes when
    plugins are loaded again). Start it in the loop's thread; `stop` joins the thread.
    """

    def __init__(
        self,
        threshold: float,
        plugin_modules: Callable[[], Mapping[str, str]],
    ) -> None:
        self._threshold = threshold
        self._plugin_modules = plugin_modules
        self._interval = min(0.25, threshold / 4)
        self._lock = threading.Lock()
        self._pending_since: float | None = None
        self._warned_at: float | None = None
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self.warnings = 0
        """How many times a blocked loop was reported."""

    def start(self) -> None:
        """Start watching the running loop."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._thread = threading.Thread(target=self._run, name="executor-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching; returns once the thread has ended."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _answered(self) -> None:
        with self._lock:
            pending, warned = self._pending_since, self._warned_at
            self._pending_since = None
            self._warned_at = None
        if warned is not None and pending is not None:
            log.warning("the event loop ran again after %.1fs blocked", time.monotonic() - pending)

    def _run(self) -> None:
        assert self._loop is not None
        while not self._halt.wait(self._interval):
            now = time.monotonic()
            with self._lock:
                pending = self._pending_since
                if pending is None:
                    self._pending_since = now
                elif self._warned_at is None and now - pending >= self._threshold:
                    self._warned_at = now
                else:
                    continue
            if pending is None:
                try:
                    self._loop.call_soon_threadsafe(self._answered)
                except RuntimeError:  # the loop closed under us
                    return
                continue
            self._warn(now - pending)

    def _warn(self, blocked_for: float) -> None:
        frame = sys._current_frames().get(self._loop_thread)
        culprit = find_culprit(frame, self._plugin_modules()) or "code that is not a plugin's"
        self.warnings += 1
        log.warning(
            "the event loop has been blocked for %.1fs by %s: no other task runs and no "
            "heartbeat is sent meanwhile, so attempts may time out or be redelivered; do "
            "blocking work in a thread (await asyncio.to_thread(...)) or use async libraries",
            blocked_for,
            culprit,
        )
