"""The asyncio client: the synchronous client's methods run on a thread
pool of its own (each pool thread keeps its own keep-alive connection), so
``max_workers`` requests are in flight at once and the event loop never
blocks."""

import asyncio
import concurrent.futures
import functools
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

from ._client import Client, PageResult, Result, Since
from ._transport import Transport

T = TypeVar("T")


class AsyncClient:
    """:class:`hearth.Client`'s methods as coroutines (same arguments)."""

    def __init__(
        self,
        addr: Optional[str] = None,
        token: Optional[str] = None,
        timeout: Optional[float] = None,
        *,
        retries: int = 2,
        retry_wait: float = 10.0,
        max_workers: int = 8,
        transport: Optional[Transport] = None,
    ) -> None:
        self.sync = Client(
            addr, token, timeout, retries=retries, retry_wait=retry_wait, transport=transport
        )
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="hearth-client"
        )

    @property
    def address(self) -> str:
        return self.sync.address

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    async def aclose(self) -> None:
        # The connections first: a pool thread's ends with the thread.
        self.sync.close()
        self._pool.shutdown(wait=True)

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def invoke(
        self,
        name: str,
        event: Any = None,
        *,
        version: Optional[int] = None,
        alias: Optional[str] = None,
        timeout: Optional[float] = None,
        log: bool = False,
        retries: Optional[int] = None,
    ) -> Result:
        return await self._run(
            self.sync.invoke,
            name,
            event,
            version=version,
            alias=alias,
            timeout=timeout,
            log=log,
            retries=retries,
        )

    async def page(
        self,
        name: str,
        request: Any = None,
        *,
        version: Optional[int] = None,
        alias: Optional[str] = None,
        timeout: Optional[float] = None,
        retries: Optional[int] = None,
    ) -> PageResult:
        return await self._run(
            self.sync.page,
            name,
            request,
            version=version,
            alias=alias,
            timeout=timeout,
            retries=retries,
        )

    async def health(self) -> Dict[str, Any]:
        return await self._run(self.sync.health)

    async def deploy(
        self,
        path: Any,
        message: Optional[str] = None,
        publish: bool = True,
        *,
        timeout: Optional[float] = None,
        allow_breaking: bool = False,
    ) -> Dict[str, Any]:
        return await self._run(
            self.sync.deploy, path, message, publish, timeout=timeout, allow_breaking=allow_breaking
        )

    async def publish(
        self, name: str, version: int, message: Optional[str] = None, *, allow_breaking: bool = False
    ) -> Dict[str, Any]:
        return await self._run(self.sync.publish, name, version, message, allow_breaking=allow_breaking)

    async def rollback(self, name: str, message: Optional[str] = None) -> Dict[str, Any]:
        return await self._run(self.sync.rollback, name, message)

    async def functions(self) -> List[Dict[str, Any]]:
        return await self._run(self.sync.functions)

    async def function(self, name: str) -> Dict[str, Any]:
        return await self._run(self.sync.function, name)

    async def versions(self, name: str) -> Dict[str, Any]:
        return await self._run(self.sync.versions, name)

    async def releases(self, name: str) -> List[Dict[str, Any]]:
        return await self._run(self.sync.releases, name)

    async def aliases(self, name: str) -> List[Dict[str, Any]]:
        return await self._run(self.sync.aliases, name)

    async def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        split: Optional[Tuple[int, int]] = None,
        message: Optional[str] = None,
    ) -> Dict[str, Any]:
        return await self._run(
            self.sync.set_alias, name, alias, version, split=split, message=message
        )

    async def logs(
        self,
        name: str,
        since: Optional[Since] = None,
        request_id: Optional[str] = None,
        status: Optional[str] = None,
        version: Optional[int] = None,
        limit: Optional[int] = None,
        after_seq: Optional[int] = None,
    ) -> Dict[str, Any]:
        return await self._run(
            self.sync.logs, name, since, request_id, status, version, limit, after_seq
        )

    async def call(self, request_id: str) -> Dict[str, Any]:
        return await self._run(self.sync.call, request_id)

    async def stats(
        self,
        name: Optional[str] = None,
        *,
        app: Optional[str] = None,
        window: Optional[str] = None,
    ) -> Dict[str, Any]:
        return await self._run(self.sync.stats, name, app=app, window=window)

    async def tokens(self) -> List[Dict[str, Any]]:
        return await self._run(self.sync.tokens)

    async def create_token(
        self, name: str, scopes: Sequence[str], apps: Optional[Sequence[str]] = None
    ) -> Dict[str, Any]:
        return await self._run(self.sync.create_token, name, scopes, apps)

    async def revoke_token(self, name: str) -> Dict[str, Any]:
        return await self._run(self.sync.revoke_token, name)
