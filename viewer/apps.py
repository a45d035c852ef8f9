from django.apps import AppConfig


class ViewerConfig(AppConfig):
    name = "viewer"

    def ready(self):
        from django.contrib.auth.signals import user_logged_out

        user_logged_out.connect(_drop_tile_grants, dispatch_uid="viewer-drop-tile-grants")


def _drop_tile_grants(sender, request=None, **kwargs):
    """Logging out ends the fast path's tile grants of that session at once."""
    from viewer.fastpath import grants

    if request is not None and hasattr(request, "session"):
        grants.forget_session(request.session.session_key)
