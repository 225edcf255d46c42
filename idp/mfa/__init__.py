"""两步验证: TOTP codes from an authenticator app, recovery codes and trusted devices."""
