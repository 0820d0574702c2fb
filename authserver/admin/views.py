"""bp "admin": the Users module."""
from flask import Blueprint

bp = Blueprint("admin", __name__)
