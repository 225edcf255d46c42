"""Code both Hongliu applications use: configuration, the ephemeral store, messaging, web basics.

Nothing here imports ``idp`` or ``hall``.
"""
