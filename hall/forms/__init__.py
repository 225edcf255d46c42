"""Online forms: JSON Schema definitions, server-side validation and rendering."""
