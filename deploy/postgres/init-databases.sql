-- Run once by the postgres image when its volume is empty (deploy/compose.yaml). The image
-- creates POSTGRES_DB (hongliu_idp) for POSTGRES_USER; the hall gets a database of its own,
-- because each app keeps its own Alembic history and the hall never reads the IdP's tables.
CREATE DATABASE hongliu_hall OWNER hongliu;
