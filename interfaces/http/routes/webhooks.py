"""Webhook subscriptions and their deliveries. A tenant's subscriptions are its own: another
tenant's are not found (404). Writes need `goals:write`, reads `goals:read`: webhooks carry
the goals' events."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StringConstraints

from application.webhooks import SubscriptionNotFound
from domain.limits import MAX_URL
from domain.webhooks import SubscriptionDeleted, TooManySubscriptions
from interfaces.http.auth import GoalsReader, GoalsWriter
from interfaces.http.deps import IdempotencyDep, IfMatchDep, SystemDep, command_meta
from interfaces.http.json_body import StrictJSONRoute
from interfaces.http.problems import NOT_FOUND, Problem, problem_response
from interfaces.http.queries import MinPosition, read_your_writes
from interfaces.http.schemas import _In
from interfaces.http.types import MAX_POSITION, StorableText

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"], route_class=StrictJSONRoute)
READ_MODELS = ["webhook_outbox"]
TOO_MANY = Problem(409, "too-many-webhooks", "The tenant has as many webhook subscriptions as it may")
SubscriptionId = Annotated[str, Path(pattern=r"^wh_[0-9a-f]{32}$", description="The subscription's id.")]
EventType = Literal[
    "milestone_reached",
    "status_changed",
    "goals_set",
    "metrics_collection_failed",
    "metrics_collection_recovered",
    "goal_stagnant",
]
UrlText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL), StorableText]


class SubscriptionIn(_In):
    url: UrlText = Field(description="http(s) endpoint; it must pass the outbound guard (public, or OUTBOUND_ALLOW_NETS).")
    events: list[EventType] = Field(min_length=1, max_length=6)


class SubscriptionOut(BaseModel):
    id: str
    url: str
    events: list[str]
    created_at: str
    created_by: str
    position: int


class SubscribedOut(BaseModel):
    id: str
    url: str
    events: list[str]
    secret: str = Field(description="whsec_<base64>: the signing secret, shown in this answer only.")
    version: int
    position: int
    replayed: bool = False


class SubscriptionListOut(BaseModel):
    items: list[SubscriptionOut]


class DeletedOut(BaseModel):
    id: str
    version: int
    position: int
    replayed: bool = False


class AttemptOut(BaseModel):
    attempt: int
    at: str
    status_code: int | None
    error: str | None = Field(description="timeout, unreachable, refused, status, too_large...; null on 2xx")
    duration_ms: float


class DeliveryOut(BaseModel):
    id: str = Field(description="The webhook-id header: the same on every attempt.")
    agent_id: str
    position: int
    type: str
    payload: dict[str, Any]
    status: Literal["pending", "delivered", "failed", "cancelled"]
    created_at: str
    next_attempt_at: str | None
    attempt_count: int
    finished_at: str | None
    attempts: list[AttemptOut]


class DeliveryPageOut(BaseModel):
    items: list[DeliveryOut]
    next_cursor: int | None = Field(description="Pass as ?before= for the next (older) page.")


@router.post("", response_model=SubscribedOut, status_code=201, responses={409: {}, 422: {}})
def subscribe(
    body: SubscriptionIn, system: SystemDep, who: GoalsWriter, request: Request, key: IdempotencyDep
) -> JSONResponse:
    """Subscribe an endpoint to event types of your tenant. The answer shows the signing
    secret, once: later reads never do."""
    done = system.webhooks.subscriptions.subscribe(
        who.tenant, body.url, body.events, command_meta(request, who.actor, key), idempotency=key
    )
    answer = SubscribedOut(
        id=done.subscription_id,
        url=body.url,
        events=list(body.events),
        secret=done.secret,
        version=done.result.first.version,
        position=done.result.position,
        replayed=done.result.replayed,
    )
    location = f"/api/v1/webhooks/{done.subscription_id}"
    return JSONResponse(answer.model_dump(), status_code=201, headers={"Location": location})


@router.get("", response_model=SubscriptionListOut, responses={504: {}})
def list_subscriptions(system: SystemDep, who: GoalsReader, min_position: MinPosition = None) -> dict[str, Any]:
    """Your tenant's live subscriptions (never their secrets)."""
    read_your_writes(system, READ_MODELS, min_position)
    return {"items": system.webhooks.rows.subscriptions(who.tenant)}


@router.get("/{subscription_id}", response_model=SubscriptionOut, responses={404: {}, 504: {}})
def get_subscription(
    subscription_id: SubscriptionId, system: SystemDep, who: GoalsReader, min_position: MinPosition = None
) -> dict[str, Any]:
    read_your_writes(system, READ_MODELS, min_position)
    found = system.webhooks.rows.subscription(who.tenant, subscription_id)
    if found is None:
        raise SubscriptionNotFound(subscription_id)
    return found


@router.delete("/{subscription_id}", response_model=DeletedOut, responses={404: {}, 412: {}})
def delete_subscription(
    subscription_id: SubscriptionId,
    system: SystemDep,
    who: GoalsWriter,
    request: Request,
    key: IdempotencyDep,
    expected: IfMatchDep,
) -> dict[str, Any]:
    """Delete a subscription: nothing more is sent to it, its pending deliveries included."""
    result = system.webhooks.subscriptions.unsubscribe(
        who.tenant,
        subscription_id,
        command_meta(request, who.actor, key),
        expected_version=expected,
        idempotency=key,
    )
    return {
        "id": subscription_id,
        "version": result.first.version,
        "position": result.position,
        "replayed": result.replayed,
    }


@router.get("/{subscription_id}/deliveries", response_model=DeliveryPageOut, responses={404: {}, 504: {}})
def list_deliveries(
    subscription_id: SubscriptionId,
    system: SystemDep,
    who: GoalsReader,
    before: Annotated[int | None, Query(ge=1, le=MAX_POSITION, description="A next_cursor.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    min_position: MinPosition = None,
) -> dict[str, Any]:
    """A subscription's deliveries, newest first, each with its attempts (a deleted
    subscription's too: its pending deliveries show as cancelled)."""
    read_your_writes(system, READ_MODELS, min_position)
    rows = system.webhooks.rows
    if rows.subscription(who.tenant, subscription_id, deleted=True) is None:
        raise SubscriptionNotFound(subscription_id)
    items, cursor = rows.deliveries(who.tenant, subscription_id, before=before, limit=limit)
    return {"items": items, "next_cursor": cursor}


def install_problems(app: FastAPI) -> None:
    @app.exception_handler(SubscriptionNotFound)
    @app.exception_handler(SubscriptionDeleted)
    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(request, NOT_FOUND, str(exc))

    @app.exception_handler(TooManySubscriptions)
    async def too_many(request: Request, exc: TooManySubscriptions) -> JSONResponse:
        return problem_response(request, TOO_MANY, str(exc), limit=exc.limit)
