"""The cell table of an image (``plexhub analyze`` writes it at ``tables/cells`` in the
image's store): one row per cell, the cell's measurements and each channel's mean, as CSV or
Parquet. Who may see the image may read its table (``VisibleImage``, as for the image
itself); anyone else gets the 404 of an unknown image.

Summaries of the same tables: per study, each image's cells per phenotype and per mm² with its
LIMS metadata (``GET /studies/{code}/phenotypes``, JSON or CSV, the metadata de-identified as
for the image itself), and per image, the cells per phenotype inside each of its annotations
(``GET /images/{id}/cells/summary?by=annotation``)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from plexhub.api import audit, peerreview
from plexhub.api.db import newest_versions
from plexhub.api.deidentify import can_view_labels, image_metadata
from plexhub.api.deps import CurrentUser, DbSession, VisibleImage, VisibleStudy, study_images
from plexhub.api.models import Annotation, Image
from plexhub.errors import InputError, NotFoundError, PermissionDeniedError, PlexhubError
from plexhub.limits import CELL_SUMMARY_BYTES, CELL_TABLE_BYTES
from plexhub.ome_pipeline.confine import check_tree, inside
from plexhub.storage import StoreLocation

if TYPE_CHECKING:
    from plexhub.ome_pipeline.analysis.summaries import PhenotypeSummary

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


def cell_table(root: Path, image_id: str, part: str = "", limit: int | None = None) -> Path:
    """``tables/cells`` of the image's store, once it is known to lie inside the store and
    its ``part`` (all of it by default) to be within ``limit`` bytes; 404 before analysis."""
    where = root / "tables" / "cells"
    if where.is_dir() and not inside(root, where):
        raise PermissionDeniedError(f"cells of image {image_id}",
                                    "tables/cells links out of the image's store")
    if not where.is_dir():
        raise NotFoundError(f"cells of image {image_id}", "not found",
                            "run `plexhub analyze` on the image's store first")
    check_tree(where, f"cells of image {image_id}")  # no symlink out of the store
    limit = CELL_TABLE_BYTES if limit is None else limit
    size = sum(f.stat().st_size for f in (where / part).rglob("*") if f.is_file())
    if size > limit:
        what = f"tables/cells/{part}" if part else "cells"
        raise InputError(f"{what} of image {image_id}",
                         f"are {size} bytes on disk, more than the API serves ({limit})",
                         "read tables/cells through the zarr route with anndata instead")
    return where


@router.get("/images/{image_id}/cells", tags=["data"], response_class=Response,
            responses={200: {"content": {MEDIA["csv"]: {}, MEDIA["parquet"]: {}}}})
def get_cells(image_id: str, found: VisibleImage, user: CurrentUser, session: DbSession,
              format: Literal["csv", "parquet"] = Query("csv")) -> Response:
    """The image's cell table (404 until ``plexhub analyze`` has run on its store); the
    download is audited (``cells.download``)."""
    location = found.image.store_root()
    if location.remote:
        table = _remote_table(location, image_id)
    else:
        import anndata

        table = anndata.read_zarr(str(cell_table(location.path, image_id)))
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
    audit.record(session, user, "cells.download", "image", image_id,
                 study_code=found.study.code, after={"format": format, "rows": len(frame)})
    session.commit()
    name = f"{image_id}-cells.{format}"
    return Response(body, media_type=MEDIA[format],
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


# ----------------------------------------------------------------------------- summaries

def _summary(image: Image, limit_bytes: int | None = None) -> PhenotypeSummary | None:
    """The image's stored phenotype summary, None before analysis (or conversion)."""
    from plexhub.ome_pipeline.analysis.summaries import read_summary

    try:
        location = image.store_root()
    except NotFoundError:
        return None
    root = _local(location, image.id)
    if not (root / "tables" / "cells").is_dir():
        return None
    cell_table(root, image.id, "uns",
               CELL_SUMMARY_BYTES if limit_bytes is None else limit_bytes)
    return read_summary(root)


def study_cell_results(session: Session, study: Any) -> list[dict[str, Any]]:
    """Each analysed image of ``study``: its id, name, LIMS metadata (as stored: this is for
    the study's own staff and its LIMS) and phenotype counts and densities, the cell results
    that the findings webhook carries with the signed-off findings. Retired images are in
    it too, marked ``retired: true`` (the findings export keeps what the findings were made
    on; issue 14)."""
    out: list[dict[str, Any]] = []
    for image in session.scalars(select(Image).where(Image.study_id == study.id)
                                 .order_by(Image.created_at, Image.series_index)).all():
        entry: dict[str, Any] = {"image_id": image.id, "name": image.name,
                                 "metadata": _scalar_metadata(image.metadata_ or {})}
        if image.retired_at is not None:
            entry["retired"] = True
        try:
            found = _summary(image)
        except (PlexhubError, OSError, ValueError, KeyError) as e:  # a damaged table
            out.append({**entry, "error": str(e)})  # does not stop the sign-off's call
            continue
        if found is not None:
            out.append({**entry, "cells": found.cells, "area_mm2": found.area_mm2,
                        "counts": found.counts, "density_per_mm2": found.density_per_mm2,
                        "rules": found.rules})
    return out


def _scalar_metadata(meta: dict[str, Any]) -> dict[str, str | int | float | bool]:
    return {str(k): v for k, v in meta.items() if isinstance(v, str | int | float | bool)}


@router.get("/studies/{code}/phenotypes", tags=["data"],
            responses={200: {"content": {"application/json": {}, MEDIA["csv"]: {}}}})
def study_phenotypes(study: VisibleStudy, user: CurrentUser, session: DbSession,
                     format: Literal["json", "csv"] = Query("json"),
                     include_retired: bool = Query(
                         default=False, description="staff: count retired images too "
                         "(listed with `retired: true`)")) -> Any:
    """Cells per phenotype and per mm² of each image of the study, with the image's LIMS
    metadata (dose group, animal, tissue; de-identified for sponsors as on the image).
    Images not analysed yet are listed with ``analysed: false`` (JSON) and left out of the
    CSV, which has one row per image and phenotype. Retired images are left out, as from
    the image list; staff may ask for them (``include_retired``)."""
    rows = study_images(session, user, study, include_retired)
    labels = can_view_labels(session, user, study)
    images: list[dict[str, Any]] = []
    names: list[str] = []
    for image in rows:
        found = _summary(image)
        meta = _scalar_metadata(image_metadata(image.metadata_, user, study, labels))
        entry: dict[str, Any] = {"image_id": image.id, "name": image.name, "metadata": meta,
                                 "analysed": found is not None}
        if include_retired:
            entry["retired"] = image.retired_at is not None
        if found is not None:
            entry.update(cells=found.cells, area_mm2=found.area_mm2, counts=found.counts,
                         density_per_mm2=found.density_per_mm2, rules=found.rules)
            names += [n for n in found.counts if n not in names]
        images.append(entry)
    if format == "json":
        return {"study": study.code, "phenotypes": names, "images": images}
    keys = sorted({k for e in images for k in e["metadata"]},
                  key=lambda k: (k not in LIMS_FIRST, LIMS_FIRST.index(k)
                                 if k in LIMS_FIRST else 0, k))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(["image_id", "name", *keys, "phenotype", "count", "density_per_mm2"])
    for e in images:
        for kind, count in e.get("counts", {}).items():
            density = e["density_per_mm2"].get(kind)
            writer.writerow([e["image_id"], _cell(e["name"]),
                             *(_cell(e["metadata"].get(k, "")) for k in keys),
                             _cell(kind), count, "" if density is None else density])
    return Response(buf.getvalue(), media_type=MEDIA["csv"], headers={
        "Content-Disposition": f'attachment; filename="{study.code}-phenotypes.csv"'})


LIMS_FIRST = ["dose_group", "animal_id", "tissue"]


def _cell(value: Any) -> str:
    """A CSV cell a spreadsheet shows as text: user strings that start like a formula get
    a leading apostrophe."""
    text = str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@router.get("/images/{image_id}/cells/summary", tags=["data"])
def cell_summary(image_id: str, found: VisibleImage, user: CurrentUser, session: DbSession,
                 by: Literal["image", "annotation"] = Query("image")) -> dict[str, Any]:
    """Cells per phenotype in the whole image (``by=image``) or inside each of the image's
    polygon and rectangle annotations (``by=annotation``; points enclose nothing and are
    left out; none for a sponsor who may not see the annotations:
    ``peerreview.sees_review``), with densities per mm² where the image has a pixel size."""
    from plexhub.ome_pipeline.analysis.regions import count_in_regions, region_of
    from plexhub.ome_pipeline.analysis.summaries import read_cells

    root = _local(found.image.store_root(), image_id)
    whole = _summary(found.image)
    if whole is None:
        cell_table(root, image_id)  # the 404 that says to run plexhub analyze
        raise NotFoundError(f"cells of image {image_id}", "not found")
    out: dict[str, Any] = {"image_id": image_id, "cells": whole.cells,
                           "area_mm2": whole.area_mm2, "counts": whole.counts,
                           "density_per_mm2": whole.density_per_mm2}
    if by == "image":
        return out
    shown = peerreview.sees_review(session, user, found.study)
    regions = [r for r in (region_of(f) for f in _annotations(session, image_id)) if r] \
        if shown else []
    cell_table(root, image_id, "obs")
    points = read_cells(root)
    px = _pixel_size_um(found.image)
    counted = count_in_regions(points.y, points.x, points.phenotype, regions,
                               names=list(whole.counts) or points.names)
    out["annotations"] = [
        {"id": c.region.id, "class": c.region.label, "shape": c.region.shape,
         "area_px": c.area_px, "area_mm2": c.area_mm2(px), "cells": c.cells,
         "counts": c.counts, "density_per_mm2": c.density_per_mm2(px)}
        for c in counted]
    return out


def _pixel_size_um(image: Image) -> float | None:
    from plexhub.ome_pipeline.analysis.store import open_stored_image

    return open_stored_image(_local(image.store_root(), image.id)).pixel_size_um


def _local(location: StoreLocation, image_id: str) -> Path:
    """The store's folder: the phenotype summaries read local stores only (for now)."""
    if location.remote:
        raise InputError(f"phenotype summary of image {image_id}",
                         "is not served for stores on object storage yet",
                         "download tables/cells through the zarr route and read it with "
                         "anndata")
    return location.path


def _annotations(session: Session, image_id: str) -> list[dict[str, Any]]:
    """The newest version of each of the image's annotations that is not deleted, as
    GeoJSON Features (the review routes own them; this only reads)."""
    rows = newest_versions(session, Annotation, Annotation.annotation_id,
                           Annotation.image_id == image_id)
    return [{"type": "Feature", "id": a.annotation_id, "geometry": a.geometry,
             "properties": {"class": a.label, "shape": a.kind}}
            for a in rows if not a.deleted]


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
        raise InputError(f"cells of image {image_id}",
                         f"are {size} bytes in the store, more than the API serves "
                         f"({CELL_TABLE_BYTES})",
                         "read tables/cells through the zarr route with anndata instead")
    store = StoreLocation(location.join("tables/cells"), location.options).zarr_store()
    return anndata.read_zarr(zarr.open_group(store, mode="r"))
