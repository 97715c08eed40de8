"""homelabcmd control plane: servers, heartbeats, actions and SSH remediation over a JSON API."""


def create_app(config=None):
    """Build the control Flask app (see `control.app.create_app`); imported lazily."""
    from control.app import create_app as factory

    return factory(config)
