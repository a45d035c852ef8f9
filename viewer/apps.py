from django.apps import AppConfig


class ViewerConfig(AppConfig):
    name = "viewer"

    def ready(self):
        from django.contrib.auth.signals import user_logged_out
        from django.db.models.signals import post_save

        from cases import results
        from viewer import results as viewer_results

        results.provide(viewer_results)  # reports read corrected results through cases.results
        user_logged_out.connect(_drop_tile_grants, dispatch_uid="viewer-drop-tile-grants")
        from viewer import carry

        # A re-run that is done takes over the previous run's corrections (viewer.carry).
        post_save.connect(carry.on_job_saved, sender="analysis.AnalysisJob", dispatch_uid="viewer-carry-corrections")


def _drop_tile_grants(sender, request=None, **kwargs):
    """Logging out ends the fast path's tile grants of that session at once."""
    from viewer.fastpath import grants

    if request is not None and hasattr(request, "session"):
        grants.forget_session(request.session.session_key)
