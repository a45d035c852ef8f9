"""The Django settings the module owns: every name prefixed PDL1_, each with the default a host project
gets when it sets none (README.md, "Configuration" and "Installing into a host Django project").

The apps read them as `settings.PDL1_…` with `from pdl1site.conf import settings`: Django's settings,
plus DEFAULTS for a module setting the project did not set. Every other name is Django's setting as it
is, so a module that reads MEDIA_ROOT too needs no second import. The standalone site sets each from an
environment variable (pdl1site/settings.py; the variables keep their names, e.g. BATCH_DEADLINE_SECONDS
sets PDL1_BATCH_DEADLINE_SECONDS). tests/pdl1site/test_module_settings.py fails on an app that reads a
setting of its own without the prefix, or through django.conf.settings (no default there).

Imports nothing but django.conf: pdl1site/settings.py takes its defaults from here.
"""

from django.conf import settings as django_settings

DEFAULTS = {
    # Reports and the API
    "PDL1_INSTITUTION_NAME": "PD-L1 platform demo hospital",
    "PDL1_API_TOKEN_MAX_AGE": 24 * 3600,
    "PDL1_FHIR_MRN_SYSTEM": "urn:pdl1:mrn",
    "PDL1_FHIR_ACCESSION_SYSTEM": "urn:pdl1:accession",
    # The audit trail's client address (pdl1site.middleware.client_address)
    "PDL1_TRUST_FORWARDED_FOR": False,
    # Uploads and work bounds
    "PDL1_SLIDE_UPLOAD_MAX_BYTES": 8 * 1024**3,
    "PDL1_SLIDE_MAX_PIXELS": 40_000_000_000,
    "PDL1_SLIDE_MAX_DECODE_PIXELS": 50_000_000,
    "PDL1_SLIDE_VALIDATION_MEMORY_BYTES": 4 * 1024**3,
    "PDL1_SLIDE_VALIDATION_TIMEOUT_SECONDS": 300,
    "PDL1_ANNOTATION_IMPORT_MAX_BYTES": 20 * 1024**2,
    "PDL1_JOB_MAX_TILES": 200_000,
    # Analysis batches (workers)
    "PDL1_BATCH_DEADLINE_SECONDS": 900,
    "PDL1_BATCH_MAX_ATTEMPTS": 3,
    # Training runs (workers/training.py): the watchdog's "lost" age, and starts of one run before it fails
    "PDL1_TRAINING_STALE_SECONDS": 900,
    "PDL1_TRAINING_MAX_ATTEMPTS": 3,
    # Tile server (viewer)
    "PDL1_VIEWER_TILE_GRANT_SECONDS": 10,
    "PDL1_VIEWER_SLIDE_CACHE_SIZE": 16,
    "PDL1_VIEWER_TILE_CACHE_BYTES": 32 * 1024**2,
    "PDL1_VIEWER_JPEG_QUALITY": 80,
    # GPU workers (workers/pipeline.py); empty strings: gpu_runtime's compile mode, MEDIA_ROOT/torch-compile-cache
    "PDL1_GPU_INDEX": None,
    "PDL1_WORKER_INDEX": 0,
    "PDL1_GPU_STREAM": False,
    "PDL1_GPU_READERS": 0,
    "PDL1_GPU_BATCH": 32,
    "PDL1_TORCH_COMPILE": False,
    "PDL1_TORCH_COMPILE_MODE": "",
    "PDL1_COMPILE_CACHE": "",
    # Hospital integration (integration app; docs/integration.md)
    "PDL1_INTEGRATION_ORDER_DEPARTMENT": "",
    "PDL1_INTEGRATION_MRN_AUTHORITY": "",
    "PDL1_INTEGRATION_MLLP_HOST": "127.0.0.1",
    "PDL1_INTEGRATION_MLLP_PORT": 2575,
    # An order is a few KiB; an MLLP block is parsed whole in memory (1 MiB of repetitions took minutes)
    "PDL1_INTEGRATION_MAX_MESSAGE_BYTES": 64 * 1024,
    "PDL1_INTEGRATION_APPLICATION": "PDL1",
    "PDL1_INTEGRATION_FACILITY": "PATHOLOGY",
    "PDL1_INTEGRATION_RESULTS_APPLICATION": "HIS",
    "PDL1_INTEGRATION_RESULTS_FACILITY": "HOSPITAL",
    "PDL1_INTEGRATION_RESULTS_MLLP_PEER": "",
    "PDL1_INTEGRATION_RESULTS_FHIR_BASE_URL": "",
    "PDL1_INTEGRATION_RESULTS_FHIR_AUTHORIZATION": "",
    "PDL1_INTEGRATION_TIMEOUT_SECONDS": 10,
    "PDL1_INTEGRATION_RETRY_BASE_SECONDS": 30,
    "PDL1_INTEGRATION_RETRY_MAX_SECONDS": 900,
}

# The names these settings had before they were prefixed: a project that still sets one is warned
# (check_renamed_settings), never silently ignored.
RENAMED = {name.removeprefix("PDL1_"): name for name in (
    "PDL1_INSTITUTION_NAME", "PDL1_API_TOKEN_MAX_AGE", "PDL1_FHIR_MRN_SYSTEM", "PDL1_FHIR_ACCESSION_SYSTEM",
    "PDL1_SLIDE_UPLOAD_MAX_BYTES", "PDL1_SLIDE_MAX_PIXELS", "PDL1_SLIDE_MAX_DECODE_PIXELS",
    "PDL1_SLIDE_VALIDATION_MEMORY_BYTES", "PDL1_SLIDE_VALIDATION_TIMEOUT_SECONDS", "PDL1_ANNOTATION_IMPORT_MAX_BYTES",
    "PDL1_JOB_MAX_TILES", "PDL1_BATCH_DEADLINE_SECONDS", "PDL1_BATCH_MAX_ATTEMPTS", "PDL1_VIEWER_TILE_GRANT_SECONDS",
    "PDL1_VIEWER_SLIDE_CACHE_SIZE", "PDL1_VIEWER_TILE_CACHE_BYTES", "PDL1_VIEWER_JPEG_QUALITY",
    "PDL1_TRAINING_STALE_SECONDS", "PDL1_TRAINING_MAX_ATTEMPTS")}


class ModuleSettings:
    """django.conf.settings with DEFAULTS for the module's own names (read at each access, so
    override_settings and the tests' `settings` fixture apply)."""

    def __getattr__(self, name):
        if name in DEFAULTS:
            return getattr(django_settings, name, DEFAULTS[name])
        return getattr(django_settings, name)


settings = ModuleSettings()


def check_renamed_settings(app_configs, **kwargs):
    """System check pdl1site.W001 (registered by CasesConfig.ready): a project setting an old, unprefixed
    name of a module setting, which the module no longer reads."""
    from django.core.checks import Warning

    return [Warning(f"settings.{old} is no longer read by the PD-L1 module: it reads settings.{new}",
                    hint=f"rename {old} to {new} in your settings (README.md, 'Configuration')",
                    obj=old, id="pdl1site.W001")
            for old, new in RENAMED.items() if hasattr(django_settings, old)]


# REST_FRAMEWORK entries the module's access rules rely on: the browsable pages' forms list every row
# of a related table (every patient's name and MRN), and django-filter's default related-object filter
# tells a missing id from one the user may not see.
REQUIRED_REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_FILTER_BACKENDS": ["pdl1site.rest.FilterBackend"],
}


def check_rest_framework(app_configs, **kwargs):
    """System checks pdl1site.E002 / E003 (registered by CasesConfig.ready): REST_FRAMEWORK renders JSON
    only and filters related objects by id, or the API shows patients to users outside their department."""
    from django.core.checks import Error

    configured = getattr(django_settings, "REST_FRAMEWORK", {}) or {}
    errors = []
    renderers = list(configured.get("DEFAULT_RENDERER_CLASSES") or ["rest_framework.renderers.BrowsableAPIRenderer"])
    if any("BrowsableAPIRenderer" in str(r) or "TemplateHTMLRenderer" in str(r) for r in renderers):
        errors.append(Error("REST_FRAMEWORK renders the browsable API, whose forms list every patient and case",
                            hint='set REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"] = '
                                 '["rest_framework.renderers.JSONRenderer"] (README.md, "Installing into a host Django project")',
                            obj="REST_FRAMEWORK", id="pdl1site.E002"))
    backends = [str(b) for b in configured.get("DEFAULT_FILTER_BACKENDS") or []]
    if "django_filters.rest_framework.DjangoFilterBackend" in backends or "pdl1site.rest.FilterBackend" not in backends:
        errors.append(Error("REST_FRAMEWORK must filter with pdl1site.rest.FilterBackend: related objects by id, "
                            "so that a missing id and another department's answer alike",
                            hint='put "pdl1site.rest.FilterBackend" in REST_FRAMEWORK["DEFAULT_FILTER_BACKENDS"] '
                                 'instead of DjangoFilterBackend',
                            obj="REST_FRAMEWORK", id="pdl1site.E003"))
    return errors
