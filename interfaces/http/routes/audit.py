"""The audit log (docs/audit.md): roots, inclusion proofs and consistency proofs (RFC 9162),
and the anchors of its roots on a chain.

A tenant gets proofs of its own events only; any other position (another tenant's event, an
event of no tenant) does not exist for it (404). An admin of OPERATOR_TENANT gets proofs of
every event. Roots, anchors and consistency proofs are public to every `audit:read` caller:
they are hashes, and tell nothing of any event but how many there are.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Security
from fastapi.exceptions import RequestValidationError

from application.audit import BeyondTree, NotInLog, Viewer
from interfaces.http.auth import Principal, authenticated
from interfaces.http.deps import SystemDep
from interfaces.http.json_body import StrictJSONRoute
from interfaces.http.types import MAX_POSITION

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], route_class=StrictJSONRoute)
AuditReader = Annotated[Principal, Security(authenticated, scopes=["audit:read"])]
Position = Annotated[int, Path(ge=1, le=MAX_POSITION, description="The event's log position.")]
Size = Annotated[int, Query(ge=0, le=MAX_POSITION, description="A tree size (number of leaves).")]


def _beyond(error: BeyondTree) -> RequestValidationError:
    return RequestValidationError([{"loc": ("query", error.field), "msg": str(error), "type": "value_error"}])


@router.get("/root")
def current_root(system: SystemDep, who: AuditReader) -> dict[str, Any]:
    """The current tree size (events leafed so far) and its root hash (hex)."""
    return system.audit.root()


@router.get("/events/{position}/proof")
def inclusion_proof(
    position: Position,
    system: SystemDep,
    who: AuditReader,
    tree_size: Annotated[
        int | None, Query(ge=1, le=MAX_POSITION, description="Prove against this earlier tree size.")
    ] = None,
) -> dict[str, Any]:
    """The event's leaf (its canonical bytes, hex), leaf hash and inclusion proof against the
    root of the first anchor on the chain that holds it (`tx_hash`, `block_number`, `contract`,
    `chain_id`), with a consistency proof from there to the newest anchor (`newest_anchor`).
    Not anchored yet (`anchored: false`): against the current tree. With `tree_size`: against
    that tree, and its anchor's fields when that exact size was anchored."""
    operator = who.tenant == system.settings.operator_tenant and "admin" in who.scopes
    try:
        return system.audit.inclusion(position, Viewer(None if operator else who.tenant), tree_size)
    except NotInLog as missing:
        raise HTTPException(404, str(missing)) from None
    except BeyondTree as beyond:
        raise _beyond(beyond) from None


@router.get("/consistency")
def consistency_proof(first: Size, second: Size, system: SystemDep, who: AuditReader) -> dict[str, Any]:
    """PROOF(first, D[second]) of RFC 9162 2.1.4 and both roots: the tree of `first` leaves
    is a prefix of the tree of `second`."""
    try:
        return system.audit.consistency(first, second)
    except BeyondTree as beyond:
        raise _beyond(beyond) from None


@router.get("/anchors")
def anchors(
    system: SystemDep,
    who: AuditReader,
    before: Annotated[int | None, Query(ge=1, le=MAX_POSITION, description="A next_cursor.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """The roots anchored on the chain, newest first: each `tree_size`, `root_hash`, `tx_hash`,
    `block_number`, `status` (pending, confirmed, failed with its `reason`), `contract` and
    `chain_id`. Pass `next_cursor` as `before` for the next (older) page."""
    items, cursor = system.anchors.page(before, limit)
    return {"items": items, "next_cursor": cursor}
