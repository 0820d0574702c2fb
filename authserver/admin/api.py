"""bp "admin_api": /api/admin/..."""
from flask import Blueprint

bp = Blueprint("admin_api", __name__)
