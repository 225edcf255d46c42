"""The hall's Flask extensions, created unbound and bound in :func:`hall.create_app`."""

from sqlalchemy.orm import DeclarativeBase

from shared.factory import Extensions


class Base(DeclarativeBase):
    """Declarative base of every hall model."""


extensions = Extensions.create(Base)
db = extensions.db
csrf = extensions.csrf
