"""One shared reader per API process fans task event logs out to SSE subscribers.

A single connection runs ``XREAD BLOCK`` over the event streams of every task somebody is
watching, so 5,000 open streams cost one blocking Redis connection, not 5,000. When a watcher
of a new task arrives, ``CLIENT UNBLOCK`` wakes the reader so that it re-issues XREAD with the
new stream included (retried until the reader is seen covering it, which closes the race
where the unblock lands before the XREAD it was meant for). When the last watcher leaves, the
reader is unblocked then, so that it waits for the next watcher without a read and that
watcher pays no unblock round trip (one task at a time, every task did).

Exactness: a subscriber registers first, then catches up with XRANGE from its Last-Event-ID;
whatever the shared reader delivers meanwhile is held and appended after the catch-up, and the
stream drops any id it has already passed. Every entry either existed at the XRANGE (so it is
in the catch-up) or is read later by the shared reader (so it is delivered); stream ids only
grow, so the result is every event after Last-Event-ID, once, in order.

A stream of a task this process has just accepted, opened from before its first event, takes
its catch-up from memory instead (:meth:`EventHub.subscribe_accepted`): that catch-up is
plan_created alone, and the reader, not yet past it, reads the rest. The reader starts
following such a task as soon as its 202 is out (:meth:`EventHub.remember`), for a few seconds
or until it ends if nobody watches it: the stream its client opens next finds what the steps
did meanwhile already read, in the subscription it takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from app.api.accepted import AcceptedTasks
from app.keys import Keys
from app.models import TaskState
from app.orchestration.group_commit import GroupCommit
from app.orchestration.store import LogEvent
from app.redis_lane import Lane, stream_replies

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = structlog.get_logger("agentic.sse")
Event = LogEvent  # (entry id, type, data JSON), as the task's log stream holds it
#: Queued by the hub's keep-alive tick for a stream that has waited a whole ping interval: the
#: stream sends a ping comment. Compared by identity.
KEEPALIVE: Event = ("", "", "")
QUEUE_MAX = 10_000
READ_COUNT = 512
#: Stream opens whose reads share one pipeline at most.
MAX_OPEN_BATCH = 64
#: How long the reader follows a task accepted here before anyone watches it, and how many
#: such tasks it follows at most (``EventHub.remember``).
EARLY_S = 2.0
MAX_EARLY = 256
StateAndLog = tuple[str | None, list[Event]]  # (task state or None: no such task, events)
#: Terminal events after which nothing more is written to a task's log (``task_failed`` is not
#: one: a redrive goes on after it). The reader stops reading a log at one.
FINAL = frozenset(("task_completed", "task_cancelled"))
#: The state a task is in when its log ends with this event; any other last event: running.
#: The scripts that change the state write the event in the same call (redrive.lua queues
#: steps, so a redriven task's log goes on past its task_failed).
STATE_AFTER = {
    "task_completed": TaskState.COMPLETED.value,
    "task_cancelled": TaskState.CANCELLED.value,
    "task_failed": TaskState.FAILED.value,
}


def as_event(entry_id: str, fields: dict[str, str]) -> Event:
    return entry_id, fields.get("type", "message"), fields.get("data", "{}")


def as_event_flat(entry_id: str, flat: list[str]) -> Event:
    """An entry as XREAD sends it (``[field, value, ...]``), without building a dict: the
    scripts write ``type`` then ``data`` (``emit`` in common.lua); anything else is read the
    general way."""
    if len(flat) == 4 and flat[0] == "type" and flat[2] == "data":
        return entry_id, flat[1], flat[3]
    return as_event(entry_id, dict(zip(flat[::2], flat[1::2], strict=False)))


async def read_log(redis: Redis, events_key: str, after_id: str) -> list[Event]:
    """The log's events after ``after_id`` (exclusive), oldest first."""
    return as_events(await redis.xrange(events_key, f"({after_id}", "+"))


def as_events(entries: Any) -> list[Event]:
    """A redis-py XRANGE reply as events."""
    return [as_event(i, f) for i, f in entries]


def state_after(events: list[Event]) -> str:
    """The state of a task whose log ends with ``events`` (not empty)."""
    return STATE_AFTER.get(events[-1][1], TaskState.RUNNING.value)


def parse_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class Inbox:
    """A subscription's queue: one producer (the hub), one consumer (its stream). An
    ``asyncio.Queue`` is ~3.2 KB (an Event, two deques, dicts); this is a deque and, while the
    stream waits, one future: a third of the memory of an idle open stream."""

    __slots__ = ("_items", "_quiet", "_waiter")

    def __init__(self) -> None:
        self._items: deque[Event | None] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._quiet = False  # nothing put since the previous keep-alive tick

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: Event | None) -> None:
        self._items.append(item)
        self._quiet = False
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def tick(self) -> None:
        """The hub's keep-alive tick, every half ping interval: a consumer that has waited with
        nothing put since the previous tick gets ``KEEPALIVE`` (so at most one ping interval
        passes without a write). One timer for all streams rather than a timeout per wait:
        arming and disarming that timeout at each wake-up was more than half a stream's cost
        to deliver an event (and its objects most of the young garbage collections)."""
        waiter = self._waiter
        if self._quiet and waiter is not None and not waiter.done() and not self._items:
            self._items.append(KEEPALIVE)
            waiter.set_result(None)
            self._quiet = False  # the next ping is two ticks away
        else:
            self._quiet = True

    def get_nowait(self) -> Event | None:
        """The oldest item; IndexError when empty."""
        return self._items.popleft()

    async def get(self) -> Event | None:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()


@dataclass(eq=False, slots=True)
class Subscription:
    task_id: str
    last_id: str
    #: Unbounded as a queue; ``offer`` stops at ``limit`` events so the end marker always fits
    #: behind the last queued event (dropping one to make room would lose it for good).
    queue: Inbox = field(default_factory=Inbox)
    limit: int = QUEUE_MAX
    overflowed: bool = False
    #: While the subscriber catches up with XRANGE, live events wait here so order is kept.
    held: list[Event] | None = None
    #: Newest id queued so far: anything at or below it is a repeat (catch-up and the shared
    #: reader overlap) and is dropped, so the queue holds each event once, in order.
    newest: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        self.newest = parse_id(self.last_id)

    def offer(self, event: Event, key: tuple[int, int] | None = None) -> None:
        """Queue ``event`` unless this stream has it already; ``key``: its id parsed
        (``parse_id``), when the caller offers it to many streams."""
        if self.overflowed:
            return
        if self.held is not None:
            self.held.append(event)
            return
        current = parse_id(event[0]) if key is None else key
        if current <= self.newest:
            return
        if self.queue.qsize() >= self.limit:
            # A client too slow to keep up is cut after the events it already has; it resumes
            # from Last-Event-ID, so nothing is lost, and the process's memory stays bounded.
            self.end()
            return
        self.newest = current
        self.queue.put_nowait(event)

    def end(self) -> None:
        """Make the stream end after what it already has: None is the end marker."""
        if self.overflowed:
            return
        self.overflowed = True
        self.queue.put_nowait(None)


class EventHub:
    def __init__(
        self,
        redis: Redis,
        reader: Redis,
        keys: Keys,
        block_ms: int = 5000,
        ping_s: float = 15.0,
        accepted: AcceptedTasks | None = None,
    ) -> None:
        self.redis = redis  # pool: catch-up reads, CLIENT UNBLOCK
        # One dedicated connection for the blocking XREAD, made by ``reader``'s pool and read
        # as a lane (app.redis_lane): an idle task's events come in four or five reads, each
        # ~100 µs of the API's CPU less than through redis-py's client. Its replies are taken
        # as they come: redis-py's XREAD parsing (a dict per entry, in Python) was a fifth of
        # the API's CPU while 5,000 streams were fed. No fallback to a pool: CLIENT UNBLOCK
        # needs the id of the connection the XREAD blocks on.
        self.reader = reader
        self._lane = Lane(reader, fallback=False)
        self.keys = keys
        self.block_ms = block_ms
        self.ping_s = ping_s
        self._pinger: asyncio.Task[None] | None = None
        self._subs: dict[str, set[Subscription]] = defaultdict(set)
        self._cursor: dict[str, str] = {}
        #: The streams of the reader's latest XREAD, each with the id it was read after.
        self._covered: dict[str, str] = {}
        #: The reader is in its XREAD (or about to send it): only then can it miss a stream.
        self._reading = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._waker: asyncio.Task[None] | None = None
        self._unblocker: asyncio.Task[None] | None = None
        self._stream_to_task: dict[str, str] = {}
        self._ending = False
        self._open_reads = GroupCommit(self._read_opens, MAX_OPEN_BATCH)
        self.accepted = accepted if accepted is not None else AcceptedTasks()
        #: Tasks accepted here that the reader follows before their first watcher arrives:
        #: task id -> (the subscription it fills, the timer that drops it).
        self._early: dict[str, tuple[Subscription, asyncio.TimerHandle]] = {}

    @property
    def open_streams(self) -> int:
        return sum(len(s) for s in self._subs.values()) - len(self._early)

    async def start(self) -> None:
        await self.reader.ping()  # the client's retries ride out a server still starting
        await self._lane.execute("ECHO", "sse-hub")  # connected, its client id known
        self._task = asyncio.create_task(self._run(), name="sse-hub")
        self._pinger = asyncio.create_task(self._keep_alive(), name="sse-keep-alive")

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(self.ping_s / 2)
            for subs in self._subs.values():
                for sub in subs:
                    sub.queue.tick()

    def end_all(self) -> None:
        """Tell every open stream, and any that opens later, to end at its next event
        boundary (drain)."""
        self._ending = True
        for subs in self._subs.values():
            for sub in subs:
                sub.end()

    async def close(self) -> None:
        for helper in (self._waker, self._unblocker):
            if helper:
                helper.cancel()
        if self._pinger:
            self._pinger.cancel()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._lane.close()
        self.end_all()

    async def subscribe(self, task_id: str, after_id: str) -> Subscription:
        """Register, then read the log from ``after_id`` ourselves: the shared reader may
        already be past it (another watcher, or a read in flight from before a reset), and
        what it delivers meanwhile waits in ``held`` so the order stays exact."""
        sub = self.register(task_id, after_id)
        try:
            events = await read_log(self.redis, self.keys.events(task_id), after_id)
        except BaseException:
            self.unsubscribe(sub)  # a failed request must not leave a cursor behind
            raise
        self.activate(sub, events)
        return sub

    async def read_state_and_log(self, task_id: str, after_id: str) -> StateAndLog:
        """The task's state and its events after ``after_id``: what every stream open needs.
        Opens that arrive while a read is in flight share the next pipeline (group commit):
        one round trip for all of them, not one each."""
        return await self._open_reads((task_id, after_id))

    async def _read_opens(self, opens: list[tuple[str, str]]) -> list[StateAndLog | Exception]:
        """The logs first: a task's log and hash are created together and expire together, so
        a catch-up that is not empty tells that the task exists, and its last event tells the
        state. Only the opens with an empty catch-up (a resume) read the state, in a second
        round trip, and their log again after it: a state read after the log could say
        "ended" of a task whose terminal event the first read missed (a 204 then would lose
        it for good)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for task_id, after_id in opens:
                pipe.xrange(self.keys.events(task_id), f"({after_id}", "+")
            logs: list[Any] = await pipe.execute(raise_on_error=False)
        answers: list[StateAndLog | Exception] = []
        resumed: list[int] = []  # empty catch-ups: their state is read next
        for i, log in enumerate(logs):
            if isinstance(log, Exception):
                answers.append(log)
            elif log:
                events = as_events(log)
                answers.append((state_after(events), events))
            else:
                answers.append((None, []))
                resumed.append(i)
        if resumed:
            # The state first, then the log again: a task that ended after the first read has
            # its terminal event in the second (state and event are written in one script).
            async with self.redis.pipeline(transaction=False) as pipe:
                for i in resumed:
                    task_id, after_id = opens[i]
                    pipe.hget(self.keys.task(task_id), "state")
                    pipe.xrange(self.keys.events(task_id), f"({after_id}", "+")
                replies: list[Any] = await pipe.execute(raise_on_error=False)
            for i, state, log in zip(resumed, replies[::2], replies[1::2], strict=True):
                failed = next((r for r in (state, log) if isinstance(r, Exception)), None)
                answers[i] = failed or (state, as_events(log))
        return answers

    def remember(self, task_id: str, first_event: Event) -> None:
        """This process has just created the task, whose log starts with ``first_event``. Just
        after the answer goes out, the reader starts following the task, for the stream its
        client usually opens next (:meth:`subscribe_accepted` hands that stream what was read
        meanwhile): the stream then starts with what the steps did already, rather than wake
        the reader (two round trips) once it opens."""
        self.accepted.remember(task_id, first_event)
        if self._task is not None:
            asyncio.get_running_loop().call_soon(self._follow_early, task_id, first_event)

    def _follow_early(self, task_id: str, first_event: Event) -> None:
        if self._ending or len(self._early) >= MAX_EARLY or task_id in self._subs:
            return  # watched already (it opened first), or too many nobody watches
        sub = self.register(task_id, "0-0")
        self.activate(sub, [first_event])
        timer = asyncio.get_running_loop().call_later(EARLY_S, self._drop_early, task_id)
        self._early[task_id] = (sub, timer)

    def _drop_early(self, task_id: str) -> None:
        """Nobody watched the task in time, or it ended unwatched: stop following it."""
        found = self._early.pop(task_id, None)
        if found is not None:
            found[1].cancel()
            self.unsubscribe(found[0])

    def subscribe_accepted(self, task_id: str, after_id: str) -> Subscription | None:
        """Subscribe without reading Redis, when the catch-up is known: the task was accepted
        here a moment ago (:meth:`remember`) and ``after_id`` is before its first event, so the
        catch-up is that event alone. The reader then reads the task's log after it, which
        needs the reader not to be past it already: neither its cursor for the task (another
        watcher's) nor the read in flight (a watcher's that has left). None otherwise: the
        caller reads the log."""
        first = self.accepted.first_event(task_id)
        if first is None:
            return None
        first_id = parse_id(first[0])
        early = self._early.pop(task_id, None)
        if early is not None:
            sub, timer = early
            timer.cancel()
            if parse_id(after_id) < first_id and not sub.overflowed:
                return sub  # it holds the log from plan_created on, as the reader read it
            self.unsubscribe(sub)
        positions = (self._cursor.get(task_id), self._covered.get(self.keys.events(task_id)))
        if parse_id(after_id) >= first_id or any(
            p is not None and parse_id(p) > first_id for p in positions
        ):
            return None
        sub = self.register(task_id, after_id)
        self.activate(sub, [first])
        return sub

    def register(self, task_id: str, after_id: str) -> Subscription:
        """The first half of :meth:`subscribe`, for a caller that reads the log itself (after
        this call) and hands it to :meth:`activate`, or calls :meth:`unsubscribe`."""
        sub = Subscription(task_id, after_id, held=[])
        if task_id not in self._cursor:
            self._cursor[task_id] = after_id
            self._stream_to_task[self.keys.events(task_id)] = task_id
        else:
            # Read again if the reader had stopped at a final event: a log ends there, but a
            # task id a client chose may be used again once the task has expired.
            self._stream_to_task.setdefault(self.keys.events(task_id), task_id)
        self._subs[task_id].add(sub)
        return sub

    def activate(self, sub: Subscription, events: list[Event]) -> None:
        """Queue the catch-up (the log read after :meth:`register`), then what the reader
        delivered meanwhile, and get the reader to cover the task."""
        held, sub.held = sub.held or [], None
        for event in events:
            sub.offer(event)
        for event in held:
            sub.offer(event)
        task_id = sub.task_id
        # The reader has not read this task yet (its cursor is where this watcher started) and
        # nobody else relies on it: start it after the catch-up instead of reading it all again.
        # (With another watcher registered, one whose own catch-up ended earlier would miss the
        # events in between.)
        unread = self._cursor.get(task_id) == sub.last_id
        if events and unread and len(self._subs[task_id]) == 1:
            self._cursor[task_id] = events[-1][0]
        if self._ending:  # drain began while this request was on its way in
            sub.end()
        elif self.keys.events(task_id) not in self._covered:
            # Whoever registered the task first may never activate (its task had ended, or its
            # request failed): every watcher makes sure the reader covers the task.
            self._wake_reader()

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.task_id)
        if subs is None:
            return
        subs.discard(sub)
        if not subs:
            del self._subs[sub.task_id]
            self._cursor.pop(sub.task_id, None)
            self._stream_to_task.pop(self.keys.events(sub.task_id), None)
            if not self._stream_to_task and self._reading and self._task is not None:
                # Nobody watches anything: the reader's XREAD waits on streams of no use. It
                # is woken now, off any request's path, to wait for the next watcher without a
                # read, rather than when that watcher comes, on its path (a round trip).
                self._unblock_later()

    def _wake_reader(self) -> None:
        """Get the reader to include the new streams, in the background: the caller has its
        catch-up already, and the reader reads each new stream from its cursor once it does."""
        self._wake.set()
        if self._waker is None or self._waker.done():
            self._waker = asyncio.create_task(self._unblock_until_covered(), name="sse-hub-wake")

    async def _unblock_until_covered(self) -> None:
        """CLIENT UNBLOCK until the reader's XREAD covers every watched stream (an unblock
        that lands before the XREAD it was meant for is lost, so it is repeated). Not while
        the reader is out of its XREAD: it reads the watched streams as it goes back in."""
        for _ in range(500):
            if self._task is None or self._stream_to_task.keys() <= self._covered.keys():
                return
            if self._reading:
                await self._unblock()
            await asyncio.sleep(0.002)

    async def _unblock(self) -> None:
        reader_id = self._lane.client_id  # None while it reconnects: the XREAD is not blocked
        if reader_id is not None:
            with contextlib.suppress(Exception):
                await self.redis.client_unblock(reader_id)

    def _unblock_later(self) -> None:
        if self._unblocker is None or self._unblocker.done():
            self._unblocker = asyncio.create_task(self._unblock(), name="sse-hub-unblock")

    async def _run(self) -> None:
        # It reads the streams in _stream_to_task: those of the watched tasks whose log has
        # not reached its final event.
        while True:
            if not self._stream_to_task:
                self._covered = {}
                await self._wake.wait()
            self._wake.clear()
            streams: dict[Any, Any] = {s: self._cursor[t] for s, t in self._stream_to_task.items()}
            if not streams:  # the last watcher left between the wake-up and now
                continue
            self._covered, self._reading = streams, True
            try:
                reply: Any = await self._lane.execute(
                    "XREAD", "COUNT", READ_COUNT, "BLOCK", self.block_ms,
                    "STREAMS", *streams, *streams.values(),
                )  # fmt: skip
                batches = list(stream_replies(reply))
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop must outlive any reply: every stream here depends on it
                self._reading = False
                log.exception("event reader failed; retrying")
                await asyncio.sleep(0.5)  # the lane reconnects at the next call
                continue
            self._reading = False
            for stream, entries in batches:
                self._deliver(stream, entries)

    def _deliver(self, stream: str, entries: list[tuple[str, list[str]]]) -> None:
        task_id = self._stream_to_task.get(stream)
        if task_id is None or not entries:
            return
        self._cursor[task_id] = entries[-1][0]
        if task_id in self._early and any(
            as_event_flat(entry_id, flat)[1] in STATE_AFTER for entry_id, flat in entries
        ):
            self._drop_early(task_id)  # ended unwatched: a stream opened later reads the log
        subs = self._subs.get(task_id, ())
        for entry_id, flat in entries:
            event = as_event_flat(entry_id, flat)
            # Parsed once for all of the task's watchers (10 a task in the bench's fan-out:
            # the parse was ~5 % of the API's CPU while it fed 5,000 streams).
            key = parse_id(entry_id)
            for sub in subs:
                sub.offer(event, key)
        if event[1] in FINAL:
            # Nothing follows in this log: not read again while its streams end (a read and,
            # with no other stream to read, an unblock, per task; and shorter reads under load).
            # A watcher that comes later reads the log itself.
            self._stream_to_task.pop(stream, None)
