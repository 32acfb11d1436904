"""The adapters of a deployment's channels, each made by its kind (channels/kinds.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp

from broadcaster.channels.base import Channel
from broadcaster.channels.kinds import Needs, kind
from broadcaster.channels.settings import ChannelConfig
from broadcaster.store.base import Store


def make_channel(
    channel_id: str,
    config: ChannelConfig,
    session: aiohttp.ClientSession,
    *,
    public_url: str,
    store: Store | None = None,
) -> Channel:
    """The adapter for one channels/<id>.yaml, by the table of kinds; made once per daemon
    and kept (Bluesky caches its session on the adapter)."""
    found = kind(config.channel_type)
    if not isinstance(config, found.settings):  # a model outside the table
        raise TypeError(f"{channel_id}: {type(config).__name__} is not {found.settings.__name__}")
    return found.adapter(channel_id, config, Needs(session, public_url, store))


# A replaced channel's old connections stay this long for requests still on their way.
RETIRE_AFTER = 30.0


class ChannelPool:
    """The adapters of a deployment's enabled channels, each with a connection pool of its
    own (at most `max_in_flight` connections): a hanging provider fills only its own pool.
    Whoever opens the pool closes it."""

    def __init__(
        self, configs: Mapping[str, ChannelConfig], *, public_url: str, store: Store | None = None
    ) -> None:
        self.configs: dict[str, ChannelConfig] = {}
        self.wanted = dict(configs)
        self.public_url = public_url
        self.store = store
        self.adapters: dict[str, Channel] = {}
        self.sessions: dict[str, aiohttp.ClientSession] = {}
        self.retiring: set[asyncio.Task[None]] = set()
        self.retired: list[aiohttp.ClientSession] = []

    async def open(self) -> dict[str, Channel]:
        await self.sync(self.wanted)
        return self.adapters

    async def sync(self, configs: Mapping[str, ChannelConfig]) -> None:
        """Adapters for the channels as they are now (a reload): new and changed ones get
        a fresh adapter, removed and disabled ones go."""
        for channel_id in list(self.adapters):
            config = configs.get(channel_id)
            if config is None or not config.enabled or config != self.configs.get(channel_id):
                self.adapters.pop(channel_id)
                self.retire(self.sessions.pop(channel_id))
        for channel_id, config in configs.items():
            if config.enabled and channel_id not in self.adapters:
                limit = config.max_in_flight
                session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=limit, limit_per_host=limit)
                )
                self.sessions[channel_id] = session
                self.adapters[channel_id] = make_channel(
                    channel_id, config, session, public_url=self.public_url, store=self.store
                )
        self.configs = dict(configs)

    def retire(self, session: aiohttp.ClientSession) -> None:
        self.retired.append(session)

        async def later() -> None:
            await asyncio.sleep(RETIRE_AFTER)
            self.retired.remove(session)
            await session.close()

        task = asyncio.create_task(later())
        self.retiring.add(task)
        task.add_done_callback(self.retiring.discard)

    async def close(self) -> None:
        sessions, self.sessions = self.sessions, {}
        self.adapters.clear()
        for task in list(self.retiring):
            task.cancel()
        await asyncio.gather(*self.retiring, return_exceptions=True)
        for session in [*sessions.values(), *self.retired]:
            await session.close()
        self.retired.clear()
