"""The handover page: what happens at each site in the next hours, and what needs a person."""

from dataclasses import dataclass, field

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from plans import selectors
from plans.forms import ShiftForm
from plans.selectors import ShiftRow, ShiftSite
from plans.timezones import utc_to_local, wall_text
from plans.views.common import VIEW_PERM, abilities, require

#: Rows per page: a page of them costs about as much to draw as the plan list's.
SHIFT_PER_PAGE = 50
GROUP_LABELS = {
    "needs_you": "Needs you",
    "on_its_way": "On its way",
    "settled": "Settled",
}


@dataclass
class ShiftGroup:
    key: str
    label: str
    count: int
    rows: list[ShiftRow] = field(default_factory=list)


@dataclass
class ShiftSection:
    """A site's part of this page: its clock now, and its rows by group (a site or a group
    that began on the page before says so)."""

    site: ShiftSite
    clock: str
    continued: bool
    facts: str
    groups: list[ShiftGroup] = field(default_factory=list)


def _sections(page: selectors.ShiftPage) -> list[ShiftSection]:
    # Rows carry their site's MINT location ID, which is unique.
    sites = {site.code: site for site in page.sites}
    sections: list[ShiftSection] = []
    first = page.rows[0] if page.rows else None
    for row in page.rows:
        site = sites.get(row.plan.site_code) or _unseen_site(row)
        if not sections or sections[-1].site.pk != site.pk:
            sections.append(
                ShiftSection(
                    site=site,
                    clock=wall_text(utc_to_local(page.now, site.time_zone)),
                    continued=page.number > 1 and row is first,
                    facts=_facts(site),
                )
            )
        groups = sections[-1].groups
        if not groups or groups[-1].key != row.group:
            groups.append(
                ShiftGroup(
                    key=row.group,
                    label=GROUP_LABELS[row.group],
                    count=sections[-1].site.counts[row.group],
                )
            )
        groups[-1].rows.append(row)
    return sections


def _facts(site: ShiftSite) -> str:
    """``2 need you · 5 on their way · 12 settled``: the site's whole window, on every page."""
    need, way, settled = (site.counts[key] for key in GROUP_LABELS)
    return (
        f"{need} need{'s' if need == 1 else ''} you · {way} on {'its' if way == 1 else 'their'} "
        f"way · {settled} settled"
    )


def _unseen_site(row: ShiftRow) -> ShiftSite:
    """The site of a plan moved to another site between the page's two reads (the window,
    then the page's plans): shown with its row, counted on the next load."""
    plan = row.plan
    return ShiftSite(
        pk=0,
        name=plan.site_name,
        code=plan.site_code,
        time_zone=plan.time_zone,
        counts=dict.fromkeys(GROUP_LABELS, 0),
    )


@require_GET
def shift_handover(request: HttpRequest) -> HttpResponse:
    require(request, VIEW_PERM)
    form = ShiftForm(request.GET)
    hours = form.span()
    page = selectors.shift_page(
        now=timezone.now(), hours=hours, page=form.page_number(), size=SHIFT_PER_PAGE
    )
    return render(
        request,
        "plans/shift.html",
        {
            "form": form,
            "hours": hours,
            "page": page,
            "sections": _sections(page),
            "groups": [(key, GROUP_LABELS[key], page.totals[key]) for key in GROUP_LABELS],
            "needs_you_sites": [s for s in page.sites if s.counts["needs_you"]],
            **abilities(request),
        },
    )
