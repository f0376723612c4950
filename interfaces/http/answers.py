"""What a command answers over HTTP: its version (also as ETag), log position and whether it
created or replayed, built here rather than by FastAPI's response_model machinery, which would
take one more trip through the thread pool per command."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from application.results import CommandResult
from interfaces.http.schemas import CommandOut


def command_answer(result: CommandResult, *, status: int = 200, location: str | None = None) -> JSONResponse:
    item = result.first
    body = CommandOut(
        agent_id=item.agent_id,
        version=item.version,
        position=result.position,
        created=item.created,
        replayed=result.replayed,
    )
    headers = {"ETag": f'"{item.version}"'}
    if location:
        headers["Location"] = location
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)
