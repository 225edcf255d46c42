"""The IdP's landing page: where people arrive when they type the IdP's address."""

from flask import Blueprint, render_template

bp = Blueprint("portal", __name__, template_folder="templates")


@bp.get("/")
def home() -> str:
    """统一身份认证 landing page."""
    return render_template("portal/home.html")
