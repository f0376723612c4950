"""Goal templates: ready-made goals for common agent roles (docs/templates.md).

Set goals from one with `POST /api/v1/goals/agents/{agent_id}` and `{"template_id": ...}`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from domain.templates import CATALOGUE, TEMPLATE_ID
from interfaces.http.auth import GoalsReader
from interfaces.http.json_body import StrictJSONRoute
from interfaces.http.schemas import TemplateListOut, TemplateOut

TEMPLATE_ID_PATTERN = f"^{TEMPLATE_ID.pattern}$"
TemplateIdPath = Annotated[str, Path(pattern=TEMPLATE_ID_PATTERN, description="A template's id.")]
router = APIRouter(prefix="/api/v1/goals/templates", tags=["goals"], route_class=StrictJSONRoute)


@router.get("", response_model=TemplateListOut)
def list_templates(who: GoalsReader) -> TemplateListOut:
    """Every goal template: objectives, KPIs, milestones and suggested metric mappings."""
    return TemplateListOut(items=[TemplateOut.model_validate(t.as_json()) for t in CATALOGUE.values()])


@router.get(
    "/{template_id}", response_model=TemplateOut, responses={404: {"description": "Unknown template"}}
)
def get_template(template_id: TemplateIdPath, who: GoalsReader) -> TemplateOut:
    """One goal template."""
    template = CATALOGUE.get(template_id)
    if template is None:
        raise HTTPException(404, f"no goal template {template_id!r}")
    return TemplateOut.model_validate(template.as_json())
