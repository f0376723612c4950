"""Request and response bodies of the registry. A card is free JSON here: the A2A checks are
the domain's, which name every wrong field path (`card.skills.0.tags`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AnyHttpUrl, Field, model_validator

from domain import limits
from interfaces.http.schemas import AGENT_ID_PATTERN, _In

Visibility = Literal["private", "public"]


class _CardSource(_In):
    card: dict[str, Any] | None = Field(None, description="An A2A AgentCard (v1.0, or v0.3/0.2.9), kept as given.")
    card_url: AnyHttpUrl | None = Field(
        None, description="Where to fetch the card (through the outbound guard: see OUTBOUND_ALLOW_NETS)."
    )

    def url(self) -> str | None:
        return str(self.card_url) if self.card_url is not None else None


class AgentIn(_CardSource):
    """Register an agent: its card inline or by URL (exactly one), and who may see it."""

    agent_id: str = Field(pattern=AGENT_ID_PATTERN, description="The agent's id in the tenant, as its goals'.")
    visibility: Visibility = "private"

    @model_validator(mode="after")
    def one_source(self) -> AgentIn:
        _one_source(self)
        return self


class AgentUpdateIn(_CardSource):
    """Replace the card (inline or by URL) and/or change the visibility."""

    visibility: Visibility | None = None

    @model_validator(mode="after")
    def one_source(self) -> AgentUpdateIn:
        if self.card is not None and self.card_url is not None:
            raise ValueError("give card or card_url, not both")
        if self.card is None and self.card_url is None and self.visibility is None:
            raise ValueError("give a card, a card_url or a visibility")
        return self


class AgentDeleteIn(_In):
    reason: str = Field("", max_length=limits.MAX_REASON)


def _one_source(body: _CardSource) -> None:
    if (body.card is None) == (body.card_url is None):
        raise ValueError("give exactly one of card and card_url")


class SignatureOut(_In):
    state: Literal["verified", "invalid", "unsigned"]
    detail: str


class GoalsParamsOut(_In):
    has_goals: bool
    goal_status: str | None
    overall_progress: float | None
    objectives_count: int
    milestones_achieved: int
    last_updated: str | None


class ReachabilityOut(_In):
    reachable: bool | None = Field(description="Whether the agent's own card URL answered at the last check; null: not checked yet.")
    since: str | None = Field(description="When the last change of `reachable` was recorded.")
    last_error: str | None = Field(description="Why it is unreachable (null while reachable).")
    last_checked: str | None


class AgentOut(_In):
    agent_id: str = Field(description="The caller's own id of the agent, or the public id of another tenant's.")
    id: str = Field(description="The public id (what the well-known documents and card URLs use).")
    owned: bool
    visibility: Visibility
    card: dict[str, Any]
    card_hash: str
    card_url: str | None
    signature: SignatureOut
    version: int
    registered_at: str
    updated_at: str
    origin: str
    goals: GoalsParamsOut
    reachability: ReachabilityOut


class CardChangeOut(_In):
    version: int
    event: str
    actor: str
    at: str
    changes: list[dict[str, Any]]


class AgentHistoryOut(_In):
    agent_id: str
    items: list[CardChangeOut]


GoalStatus = Literal["active", "paused", "completed", "cancelled"]


class AgentListOut(_In):
    items: list[AgentOut]
    total: int = Field(description="Every match, not only this page.")
    next_cursor: str | None
