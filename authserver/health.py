"""Liveness and readiness."""
from flask import Blueprint, jsonify
from sqlalchemy import text

from .extensions import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Ready when the database answers; a failure becomes a 503 through the error handler."""
    db.session.execute(text("SELECT 1"))
    return jsonify(status="ready", database="ok")
