"""authlib's JOSE implementation (``authlib.jose``), imported in one place.

authlib warns, always, that ``authlib.jose`` will move to joserfc in 2.0; we pin 1.9.x, so only
that warning is silenced, and only for this import. ``authlib.deprecate`` is imported first so
that its own global filter survives the ``catch_warnings()`` restore.
"""

from __future__ import annotations

import warnings

import authlib.deprecate  # type: ignore[import-untyped]

with warnings.catch_warnings():
    warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
    from authlib.jose import (  # type: ignore[import-untyped]
        ECKey,
        JoseError,
        JsonWebKey,
        JsonWebToken,
        JWTClaims,
    )
    from authlib.jose.errors import (  # type: ignore[import-untyped]
        BadSignatureError,
        ExpiredTokenError,
        InvalidClaimError,
        InvalidTokenError,
        MissingAlgorithmError,
        UnsupportedAlgorithmError,
    )

__all__ = [
    "BadSignatureError",
    "ECKey",
    "ExpiredTokenError",
    "InvalidClaimError",
    "InvalidTokenError",
    "JWTClaims",
    "JoseError",
    "JsonWebKey",
    "JsonWebToken",
    "MissingAlgorithmError",
    "UnsupportedAlgorithmError",
]
