"""Every URL the portal has, walked from the URLconf: none opens to someone who has not logged in.

The list is built from ``get_resolver()`` at collection time, so a view added tomorrow is
covered without anyone remembering to add it here.
"""

import re
from urllib.parse import urlsplit

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RegexPattern

from tests.factories import make_plan

#: Open to everyone on purpose: the two login pages, the load balancer's probe and the calendar
#: feeds (the token in their path is the credential: calendar programs cannot log in).
PUBLIC = {"login", "admin:login", "healthz", "plans:feed_site", "plans:feed_vehicle"}
LOGIN_PAGES = {"/accounts/login/", "/admin/login/"}
_ROUTE_PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")
_REGEX_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>(?P<body>[^)]*)\)")


def _sample_route(route: str) -> str:
    """``plans/<int:pk>/`` → ``plans/{pk}/``: every parameter becomes an existing object's pk."""
    return _ROUTE_PARAM.sub("{pk}", route)


def _sample_regex(regex: str) -> str:
    """A path the regex matches: the first of a list of names, or a page that does not exist."""

    def group(match: re.Match) -> str:
        body = match.group("body")
        if re.fullmatch(r"\w+(\|\w+)*", body):
            return body.split("|")[0]
        return "no-such-page/"

    return _REGEX_GROUP.sub(group, regex).lstrip("^").rstrip("$")


def _walk(patterns, prefix: str = "", namespace: str = ""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = ":".join(filter(None, [namespace, entry.namespace]))
            yield from _walk(entry.url_patterns, prefix + _sample_route(str(entry.pattern)), inner)
        elif isinstance(entry, URLPattern):
            if isinstance(entry.pattern, RegexPattern):
                path = _sample_regex(entry.pattern.regex.pattern)
            else:
                path = _sample_route(str(entry.pattern))
            name = ":".join(filter(None, [namespace, entry.name or ""])) or None
            yield "/" + prefix + path, name, entry


ALL_URLS = list(_walk(get_resolver().url_patterns))
PRIVATE_URLS = [(url, name) for url, name, _ in ALL_URLS if name not in PUBLIC]


@pytest.fixture
def pk(db, dispatcher) -> int:
    """An existing row's pk (plan, user and site all get 1 in a fresh test database)."""
    return make_plan(user=dispatcher).pk


def test_it_walks_the_whole_urlconf_including_the_admin():
    names = {name for _, name, _ in ALL_URLS}

    assert {
        "plans:dashboard",
        "plans:plan_detail",
        "plans:plan_retry",
        "plans:plans_submit_selected",
        "admin:index",
        "admin:plans_plan_change",
        "admin:app_list",
        "login",
    } <= names
    assert len(PRIVATE_URLS) > 60


@pytest.mark.parametrize("url", ALL_URLS, ids=lambda case: case[0])
def test_it_samples_a_url_each_pattern_really_answers_to(url, pk):
    path, _, entry = url

    match = resolve(path.format(pk=pk))

    assert match.func == entry.callback


@pytest.mark.parametrize("url", [url for url, _ in PRIVATE_URLS])
@pytest.mark.parametrize("method", ["get", "post"])
def test_it_sends_an_anonymous_visitor_to_a_login_page(client, pk, url, method):
    path = url.format(pk=pk)

    response = getattr(client, method)(path, follow=True)

    assert response.redirect_chain, f"{method.upper()} {path} answered {response.status_code}"
    first_hop = urlsplit(response.redirect_chain[0][0]).path
    assert response.redirect_chain[0][1] == 302
    if path.startswith("/admin/"):
        assert first_hop in {*LOGIN_PAGES, "/admin/"}
    else:
        assert first_hop == "/accounts/login/"
    final = urlsplit(response.request["PATH_INFO"]).path
    assert final in LOGIN_PAGES
    assert response.status_code == 200
    assert 'name="password"' in response.content.decode()


def test_it_sends_the_visitor_back_where_they_were_going_after_login(client, pk):
    response = client.get(f"/plans/{pk}/edit/")

    assert response["Location"] == f"/accounts/login/?next=/plans/{pk}/edit/"


def test_it_opens_only_the_login_pages_and_the_probe_to_anonymous_visitors(client, db):
    public = [(url, name) for url, name, _ in ALL_URLS if name in PUBLIC]

    answers = {name: client.get(url).status_code for url, name in public}

    assert answers.pop("login") == 200
    assert answers.pop("admin:login") == 200
    assert answers.pop("healthz", 200) == 200
    # The sample path's token is no token: nothing to see (tests/test_feeds.py has the rest).
    assert answers.pop("plans:feed_site") == 404
    assert answers.pop("plans:feed_vehicle") == 404
    assert answers == {}


@pytest.mark.parametrize("url", [url for url, _ in PRIVATE_URLS])
def test_it_forbids_caching_every_page_a_logged_in_user_gets(admin_client, dispatcher, url):
    """Plans, history, admin and account pages stay out of shared and back-button caches."""
    path = url.format(pk=make_plan(user=dispatcher).pk)

    response = admin_client.get(path)

    assert "no-store" in response.headers.get("Cache-Control", ""), (
        f"GET {path} answered {response.status_code} without Cache-Control: no-store"
    )


@pytest.mark.parametrize("path", ["/", "/plans/", "/mint-health/"])
def test_a_dispatchers_pages_and_polled_parts_are_not_cached_either(dispatcher_client, path):
    assert "no-store" in dispatcher_client.get(path).headers["Cache-Control"]


def test_pages_for_everyone_switch_off_browser_features_none_uses(client, db):
    for path in ("/accounts/login/", "/healthz"):
        policy = client.get(path).headers["Permissions-Policy"]
        assert "camera=()" in policy and "geolocation=()" in policy and "microphone=()" in policy
