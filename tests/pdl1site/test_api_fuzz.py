"""A bounded schemathesis run over every operation of the OpenAPI schema: never a server error.

The site runs as in production (tests.viewer.browser.LiveSite: daphne in a subprocess, a database
of its own) with one of everything (tests.pdl1site.world), and is called as a pathologist with an
API token. Each operation gets a few generated requests that follow the schema and a few that
break it (wrong types, missing fields, out-of-range values), with its path parameters naming
existing objects (so the requests reach the handlers) and then generated ones. A fixed seed and
derandomised generation make a run repeatable; about 450 requests, under a minute. Any 5xx fails
the test with the request that caused it and the server's log.
"""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.viewer.browser import PASSWORD, PYTHON, REPO, LiveSite, running_site

pytestmark = pytest.mark.slow

# Per operation and generation mode; API_FUZZ_MAX_EXAMPLES=50 makes a deeper run by hand.
MAX_EXAMPLES = int(os.environ.get("API_FUZZ_MAX_EXAMPLES", "3"))
SEED = 14
TIME_BOX_S = 80 * MAX_EXAMPLES  # the whole run; past it the test fails rather than crawl on in CI


class FuzzSite(LiveSite):
    def _setup(self) -> dict:
        code = "import django; django.setup(); from tests.pdl1site.test_api_fuzz import main; main()"
        out = subprocess.run([PYTHON, "-c", code, str(self.media)], cwd=REPO, env=self.env, capture_output=True,
                             text=True, timeout=180)
        for line in out.stdout.splitlines():
            if line.startswith("SETUP "):
                return json.loads(line[len("SETUP "):])
        raise AssertionError(f"setup failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")


def main() -> None:
    """The setup subprocess (in the site's environment): the personas and one of everything."""
    import sys

    from tests.conftest import make_personas
    from tests.pdl1site.world import build_world

    w = build_world(make_personas(), Path(sys.argv[1]))
    ids = {"patients": w["case"].patient.pk, "cases": w["case"].pk, "slides": w["slide"].pk,
           "pseudo-slides": str(w["slide"].pseudo_id), "reports": w["signed"].pk, "reports/draft": w["draft"].pk,
           "jobs": w["job"].pk, "viewer/jobs": w["job"].pk, "region_id": w["region"]["id"],
           "annotation/projects": w["project"].pk, "annotation/fields": w["field"].pk,
           "annotation/sessions": w["session"].pk}
    print("SETUP " + json.dumps(ids), flush=True)


def existing_objects(data: dict, path: str) -> dict:
    """Path parameters naming objects of the world, so that requests reach the handlers, not a 404."""
    collection = path.removeprefix("/api/").split("/{")[0]
    own = data.get("reports/draft") if path.endswith(("/sign/", "/comment/")) else data.get(collection)
    found = {"id": own, "pseudo_id": own, "point_id": "0", "region_id": data["region_id"]}
    return {name: value for name, value in found.items() if "{" + name + "}" in path and value is not None}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with running_site(FuzzSite, tmp_path_factory.mktemp("fuzz-site")) as live:
        yield live


def token_for(site, username: str) -> str:
    response = requests.post(f"{site.url}/api/auth/token/", data={"username": username, "password": PASSWORD},
                             timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["token"]


def test_no_operation_answers_a_server_error(site):
    import hypothesis
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis.core import NotSet

    # API_FUZZ_USERNAME=annotator (outsider, admin, ...: tests.conftest.make_personas) for another persona.
    headers = {"Authorization": f"Token {token_for(site, os.environ.get('API_FUZZ_USERNAME', 'pathologist'))}"}
    schema = schemathesis.openapi.from_url(f"{site.url}/api/schema/?format=json", headers=headers)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40
    session = requests.Session()
    session.headers.update(headers)
    errors, calls, started = [], [0], time.monotonic()

    # Each operation: its path parameters naming existing objects (positive and negative bodies and
    # queries), then generated path parameters too (negative: ids that are no number, huge, absent).
    runs = [(operation, mode, existing_objects(site.data, operation.path)) for operation in operations
            for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)]
    runs += [(operation, schemathesis.GenerationMode.NEGATIVE, None) for operation in operations
             if "{" in operation.path]
    for operation, mode, path_parameters in runs:
        @settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck), print_blob=False)
        @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
        @hypothesis.seed(SEED)
        def call(case):
            response = case.call(base_url=site.url, session=session, timeout=60)
            calls[0] += 1
            if response.status_code >= 500:
                body = "" if isinstance(case.body, NotSet) else str(case.body)[:300]
                errors.append(f"{response.status_code} {case.method} {case.formatted_path} query={case.query} {body}")

        try:
            call()
        except hypothesis.errors.Unsatisfiable:
            pass  # no request of this mode can be built for this operation (e.g. nothing to break)
        assert time.monotonic() - started < TIME_BOX_S, f"over {TIME_BOX_S} s after {calls[0]} requests"

    assert calls[0] > 2 * len(operations)
    server_log = site.log.read_text(errors="replace")
    assert errors == [], "\n".join(errors) + "\n" + server_log[-4000:]

