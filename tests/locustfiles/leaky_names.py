"""Test locustfile: request names, failure messages and exceptions that carry secrets.

Every secret form the masker must find (issue 27, findings 8 and 11) goes through Locust's own
stats: in request names (the URL, or ``name=``), in failure messages (``response.failure``) and
in an exception a task raises.  Each secret starts with ``$MASKER_TEST_CANARY``, a value the
masker cannot know from the environment (the variable's name is not a secret's), so only its
shape can hide it.  The names also hold markup and quotes, so a masker that rewrote the bytes
of a file instead of its values would break the file.
"""

import os

from locust import task

from loadstack.users.http import HttpUser

C = os.environ["MASKER_TEST_CANARY"]

# (URL, name) pairs: a name of None is the URL itself, as Locust names a request by default.
REQUESTS = [
    (f"/ok?refresh_token={C}rt&page=1", None),
    (f"/ok?apikey={C}ak", None),
    (f"/ok?key={C}ky&sig={C}sg", None),
    (f"/ok?session={C}ss", None),
    (f"/ok?pwd={C}pd", None),
    ("/ok", f"</script><b>dsn host=db password={C}a,b\\c'd\"e&f}}g sslpassword={C}sp"),
    ("/ok", f"redis://127.0.0.1:6379/0?password={C}r,q"),
    ("/ok", f"postgresql://app:{C}u,r@127.0.0.1/db"),
    ("/ok", f"pg host=db password='{C}q \\' t'"),
]


class LeakyUser(HttpUser):
    """Each iteration: every request above, one failing with a secret in its message, one exception."""

    @task
    def leak(self) -> None:
        for url, name in REQUESTS:
            self.client.get(url, name=name)
        with self.client.get("/fail", name="/fail", catch_response=True) as resp:
            resp.failure(
                f'backend said: {{"token": "{C}ft", "password": "{C}fp"}} apikey={C}fa '
                f"Authorization: Bearer {C}fb refresh_token={C}fr <i>&amp;</i>"
            )
        raise RuntimeError(f"task failed with session={C}xs and client_secret={C}xc")
