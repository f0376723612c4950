"""Federation: peer registries, managed by the operator tenant's admins (404 to anyone else)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import AnyHttpUrl

from interfaces.http.auth import AdminCaller, Principal
from interfaces.http.deps import SystemDep, command_meta
from interfaces.http.json_body import StrictJSONRoute
from interfaces.http.schemas import _In

router = APIRouter(prefix="/api/v1/peers", tags=["federation"], route_class=StrictJSONRoute)
PeerId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]


class PeerIn(_In):
    url: AnyHttpUrl


async def operator_admin(who: AdminCaller, system: SystemDep) -> Principal:
    """An admin of OPERATOR_TENANT; to anyone else there is nothing here (404)."""
    if who.tenant != system.settings.operator_tenant:
        raise HTTPException(404, "Not Found")
    return who


OperatorAdmin = Annotated[Principal, Depends(operator_admin)]


@router.post("", status_code=201, responses={404: {}, 422: {}})
def add_peer(body: PeerIn, system: SystemDep, who: OperatorAdmin, request: Request) -> dict[str, Any]:
    """Add a peer registry (its URL through the outbound guard); its public agents are synced."""
    peer = system.federation.add_peer(str(body.url), command_meta(request, who.actor, None))
    return {"peer_id": peer.id.hex, "url": peer.url, "version": peer.version}


@router.get("", responses={404: {}})
def list_peers(system: SystemDep, who: OperatorAdmin) -> dict[str, Any]:
    return {"items": system.peers.peers()}


@router.delete("/{peer_id}", responses={404: {}})
def remove_peer(peer_id: PeerId, system: SystemDep, who: OperatorAdmin, request: Request) -> dict[str, Any]:
    """Remove a peer, and the copies of its agents."""
    system.federation.remove_peer(peer_id, command_meta(request, who.actor, None))
    return {"peer_id": peer_id, "removed": True}


@router.post("/{peer_id}/sync", status_code=202, responses={404: {}})
def sync_peer(peer_id: PeerId, system: SystemDep, who: OperatorAdmin) -> dict[str, Any]:
    """Sync this peer now (a job); the scheduler also syncs every peer periodically."""
    system.federation.peer(peer_id)  # 404 before anything is queued
    queued = system.sync_peer_later(peer_id)
    return {"peer_id": peer_id, "queued": queued, "already_pending": not queued}
