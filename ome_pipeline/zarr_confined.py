"""zarr-python's local store, confined: every key read must resolve inside the store's root
(see :mod:`plexhub.ome_pipeline.confine`). For the reads that do not go through the direct
chunk reader: an OME-Zarr source during conversion, a store laid out unlike plexhub's."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from zarr.abc.store import ByteRequest
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.storage import LocalStore

from plexhub.errors import PermissionDeniedError
from plexhub.ome_pipeline.confine import real_prefix


class ConfinedStore(LocalStore):
    """A read-only :class:`zarr.storage.LocalStore` that refuses a key resolving outside
    its root (a symlinked chunk or folder) with :class:`~plexhub.errors.PermissionDeniedError`."""

    def __init__(self, root: Path | str, *, read_only: bool = True) -> None:
        super().__init__(root, read_only=read_only)
        self._prefix = real_prefix(self.root)

    def _check(self, key: str) -> None:
        if not os.path.realpath(self.root / key).startswith(self._prefix):
            raise PermissionDeniedError(f"{self.root.name}/{key}",
                                        "resolves outside its folder",
                                        "a symlink leads out of the Zarr store; copy the data "
                                        "into the store instead")

    async def get(self, key: str, prototype: BufferPrototype | None = None,
                  byte_range: ByteRequest | None = None) -> Buffer | None:
        self._check(key)
        return await super().get(key, prototype, byte_range)

    def get_sync(self, key: str, *, prototype: BufferPrototype | None = None,
                 byte_range: ByteRequest | None = None) -> Buffer | None:
        self._check(key)
        return super().get_sync(key, prototype=prototype, byte_range=byte_range)

    async def get_partial_values(self, prototype: BufferPrototype,
                                 key_ranges: Iterable[tuple[str, ByteRequest | None]]
                                 ) -> list[Buffer | None]:
        key_ranges = list(key_ranges)
        for key, _ in key_ranges:
            self._check(key)
        return await super().get_partial_values(prototype, key_ranges)
