"""How a server is run: ``settings`` (the deployment TOML) and ``logins`` (users and roles)."""
