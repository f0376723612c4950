"""The dashboard's page and assets, served from the package (no separate server, no CDN)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from interfaces.web import STATIC

router = APIRouter(include_in_schema=False)


@router.get("/dashboard")
def dashboard_page() -> FileResponse:
    """The one HTML page; every view is a hash route of it (`#/agents/{id}`)."""
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


def install(app: FastAPI) -> None:
    """The page's route and its assets under /dashboard/assets."""
    app.include_router(router)
    app.mount("/dashboard/assets", StaticFiles(directory=STATIC), name="dashboard-assets")
