"""The hall's home page (首页)."""

from flask import Blueprint, render_template

bp = Blueprint("portal", __name__, template_folder="templates")


@bp.get("/")
def home() -> str:
    """红柳易办 home page."""
    return render_template("portal/home.html")
