"""The cell table of an image (``plexhub analyze`` writes it at ``tables/cells`` in the
image's store): one row per cell, the cell's measurements and each channel's mean, as CSV or
Parquet. Who may see the image may read its table (``VisibleImage``, as for the image
itself); anyone else gets the 404 of an unknown image."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from plexhub.api.deps import VisibleImage
from plexhub.errors import InputError, NotFoundError, PermissionDeniedError
from plexhub.limits import CELL_TABLE_BYTES
from plexhub.ome_pipeline.confine import check_tree, inside
from plexhub.storage import StoreLocation

router = APIRouter(prefix="/api/v1")
MEDIA = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}


def cell_frame(table: Any) -> Any:
    """obs columns, then one ``<channel>`` column of mean intensity per channel."""
    import pandas as pd

    obs = table.obs.reset_index(drop=True)
    obs = obs.drop(columns=[c for c in ("region",) if c in obs.columns])
    means = pd.DataFrame(table.X, columns=[f"{v}" for v in table.var_names])
    clash = set(means.columns) & set(obs.columns)
    means = means.rename(columns={c: f"{c}_mean" for c in clash})
    return pd.concat([obs, means], axis=1)


@router.get("/images/{image_id}/cells", tags=["data"], response_class=Response,
            responses={200: {"content": {MEDIA["csv"]: {}, MEDIA["parquet"]: {}}}})
def get_cells(image_id: str, found: VisibleImage,
              format: Literal["csv", "parquet"] = Query("csv")) -> Response:
    """The image's cell table (404 until ``plexhub analyze`` has run on its store)."""
    location = found.image.store_root()
    if location.remote:
        table = _remote_table(location, image_id)
    else:
        table = _local_table(location.path, image_id)
    frame = cell_frame(table)
    if format == "csv":
        body = frame.to_csv(index=False).encode()
    else:
        try:
            buf = io.BytesIO()
            frame.to_parquet(buf, index=False)
        except ImportError as exc:
            raise InputError("format=parquet", "needs pyarrow, which is not installed",
                             "ask for format=csv") from exc
        body = buf.getvalue()
    name = f"{image_id}-cells.{format}"
    return Response(body, media_type=MEDIA[format],
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _too_large(image_id: str, size: int) -> InputError:
    return InputError(f"cells of image {image_id}",
                      f"are {size} bytes in the store, more than the API serves "
                      f"({CELL_TABLE_BYTES})",
                      "read tables/cells through the zarr route with anndata instead")


def _local_table(root: Path, image_id: str) -> Any:
    where = root / "tables" / "cells"
    if where.is_dir() and not inside(root, where):
        raise PermissionDeniedError(f"cells of image {image_id}",
                                    "tables/cells links out of the image's store")
    if not where.is_dir():
        raise NotFoundError(f"cells of image {image_id}", "not found",
                            "run `plexhub analyze` on the image's store first")
    check_tree(where, f"cells of image {image_id}")  # no symlink out of the store
    size = sum(f.stat().st_size for f in where.rglob("*") if f.is_file())
    if size > CELL_TABLE_BYTES:
        raise _too_large(image_id, size)
    import anndata

    return anndata.read_zarr(str(where))


def _remote_table(location: StoreLocation, image_id: str) -> Any:
    """The table of a store on object storage (no links there to leave the store by)."""
    import anndata
    import zarr

    fs, base = location.filesystem()
    where = f"{base}/tables/cells"
    if not fs.isdir(where):
        raise NotFoundError(f"cells of image {image_id}", "not found",
                            "run `plexhub analyze` on the image's store first")
    size = int(fs.du(where))
    if size > CELL_TABLE_BYTES:
        raise _too_large(image_id, size)
    store = StoreLocation(location.join("tables/cells"), location.options).zarr_store()
    return anndata.read_zarr(zarr.open_group(store, mode="r"))
