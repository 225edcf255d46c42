"""一事联办: the service catalogue, service guides, system entries, favourites and notices."""
