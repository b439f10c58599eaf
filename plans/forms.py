"""Forms for the plan pages: they validate and normalise; ``plans.services`` decides.

Times are typed as the site's wall clock, so ``PlanForm`` is a plain form: it turns the date
and the two local times (an end earlier than the start being the next day) into UTC instants in
the chosen site's zone (refusing DST gaps and overlaps), and the service, not the form, writes
the plan. Dates and times are text inputs, never ``type=date``/``datetime-local``, whose format
follows the browser's locale.
"""

import re
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.utils import timezone

from plans import selectors
from plans.models import (
    WEEKDAYS,
    Location,
    Plan,
    PlanState,
    Schedule,
    ScheduleException,
    TargetKind,
    Vehicle,
    plan_window_errors,
    validate_one_line_text,
)
from plans.selectors import PlanFilters
from plans.services.guards import WARNING_CODES, Finding
from plans.services.schedules import SCHEDULE_FIELDS
from plans.timezones import LocalTimeError, local_to_utc, utc_to_local, utc_to_wall, wall_text

#: A day as people type it, whatever the browser's locale: ISO first (what the form shows), then
#: the European day-first form with dots. ``DD/MM`` is not taken: in a US hand it is ``MM/DD``.
DAY_INPUT_FORMATS = ("%Y-%m-%d", "%d.%m.%Y")
#: A 24-hour time: ``18:30``, ``18.30`` or ``1830`` (quick on a numeric keypad).
TIME_INPUT_FORMATS = ("%H:%M", "%H.%M", "%H%M", "%H:%M:%S")
_DAY_PATTERN = r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}\.\d{1,2}\.\d{4}"
_TIME_PATTERN = r"\d{1,2}[:.]?\d{2}"
_FULL_TIME = re.compile(r"\d{1,2}[:.]?\d{2}(:\d{2})?")

#: MINT's field names (spec Table 1) → the form field a dispatcher fixes.
MINT_FIELD_TO_FORM_FIELD = {
    "locationId": "location",
    "scheduledStartTime": "start_local",
    "scheduledEndTime": "end_local",
    "expectedRange": "expected_range_km",
    "averageConsumption": "average_consumption",
    "expectedCharge": "expected_charge_kwh",
    "status": "status_note",
}
#: Model/service field names → form field names, for errors the service raises.
SERVICE_FIELD_TO_FORM_FIELD = {
    "scheduled_start": "start_local",
    "scheduled_end": "end_local",
}
_LEADING_NAME = re.compile(r"^\s*([a-z][A-Za-z]*)\s*:")
#: Fields a guard's warning can be shown beside (``Finding.field``).
_GUARDED_FIELDS = ("vehicle", "location", "start_local", "expected_range_km", "expected_charge_kwh")


class DayField(forms.DateField):
    """A day typed as text: ``2025-11-25`` or ``25.11.2025``.

    Not ``type=date``: that input shows and takes the browser locale's order (mm/dd/yyyy in a
    US browser), so what the dispatcher reads would depend on the machine.
    """

    widget = forms.DateInput(
        format="%Y-%m-%d",
        attrs={
            "placeholder": "2025-11-25",
            "pattern": _DAY_PATTERN,
            "size": 10,
            "autocomplete": "off",
            "spellcheck": "false",
        },
    )
    default_error_messages = {
        "invalid": "Enter the date as YYYY-MM-DD or DD.MM.YYYY, like 2025-11-25."
    }

    def __init__(self, **kwargs) -> None:
        super().__init__(input_formats=DAY_INPUT_FORMATS, **kwargs)


def _parse(text: str, formats: tuple[str, ...], parse) -> object | None:
    for fmt in formats:
        try:
            return parse(datetime.strptime(text, fmt))
        except ValueError:
            continue
    return None


class WallTimeField(forms.TimeField):
    """A 24-hour ``HH:MM`` typed as text, whatever the browser's locale (a ``type=time`` input
    shows AM/PM in a US browser)."""

    widget = forms.TimeInput(
        format="%H:%M",
        attrs={
            "inputmode": "numeric",
            "placeholder": "18:30",
            "pattern": _TIME_PATTERN,
            "size": 5,
            "autocomplete": "off",
        },
    )
    default_error_messages = {"invalid": "Enter a 24-hour time, like 18:30."}

    def __init__(self, **kwargs) -> None:
        super().__init__(input_formats=TIME_INPUT_FORMATS, **kwargs)

    def to_python(self, value) -> time | None:
        # strptime takes one digit for the minutes: "18:3" would silently be 18:03.
        if isinstance(value, str) and value.strip() and not _FULL_TIME.fullmatch(value.strip()):
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)


class EndField(forms.Field):
    """The end as typed: a time (``05:45``), or a day and a time (``2025-11-27 05:45``).

    A bare time is on the start's day, or on the next day when it is earlier than the start
    (``PlanForm._clean_times``); the day is typed only for a stay that ends later than that.
    Cleans to ``(day or None, time)``.
    """

    widget = forms.TextInput(
        attrs={
            "placeholder": "05:45",
            "pattern": rf"(({_DAY_PATTERN})[ T])?{_TIME_PATTERN}",
            "size": 16,
            "autocomplete": "off",
            "spellcheck": "false",
        }
    )
    default_error_messages = {
        "invalid": "Enter a 24-hour time like 05:45, or a date and time like 2025-11-27 05:45."
    }

    def to_python(self, value) -> tuple[date | None, time] | None:
        if value in self.empty_values:
            return None
        if isinstance(value, tuple):
            return value
        parts = str(value).strip().replace("T", " ").split()
        day = None
        if len(parts) == 2:
            day = _parse(parts[0], DAY_INPUT_FORMATS, datetime.date)
            if day is None:
                raise ValidationError(self.error_messages["invalid"], code="invalid")
        elif len(parts) != 1:
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        at = _parse(parts[-1], TIME_INPUT_FORMATS, datetime.time)
        if at is None or not _FULL_TIME.fullmatch(parts[-1]):
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        return day, at


class LocationChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Location) -> str:
        return f"{obj.name} · {obj.mint_location_id} · {obj.time_zone}"


class VehicleChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Vehicle) -> str:
        return f"{obj.name} · {obj.battery_kwh:.0f} kWh · {obj.home_location.name}"


class PlanForm(forms.Form):
    vehicle = VehicleChoiceField(
        label="Vehicle",
        queryset=Vehicle.objects.none(),
        required=False,
        empty_label="No vehicle",
        help_text="Picking one fills in its home site and consumption; its plans may not overlap.",
        error_messages={"invalid_choice": "There is no such vehicle; choose one from the list."},
    )
    location = LocationChoiceField(
        label="Site",
        queryset=Location.objects.none(),
        empty_label="Choose a site…",
        error_messages={"required": "Choose the site the vehicle will be at."},
    )
    start_date = DayField(
        label="Date",
        help_text="The day the vehicle arrives, on the site's calendar: YYYY-MM-DD or DD.MM.YYYY.",
        error_messages={"required": "Enter the day the vehicle arrives, like 2025-11-25."},
    )
    start_local = WallTimeField(
        label="Start (site time)",
        help_text="24-hour HH:MM.",
        error_messages={"required": "Enter when the vehicle arrives, like 18:30."},
    )
    end_local = EndField(
        label="End (site time)",
        help_text="24-hour HH:MM; a time earlier than the start is on the next day. For a stay "
        "that ends later than that, type the end's date too: 2025-11-27 05:45.",
        error_messages={"required": "Enter when the vehicle leaves, like 05:45."},
    )
    target_kind = forms.ChoiceField(
        label="Target",
        choices=[(TargetKind.RANGE, "Range"), (TargetKind.CHARGE, "Charge")],
        widget=forms.RadioSelect,
        error_messages={"required": "Choose Range or Charge."},
    )
    expected_range_km = forms.IntegerField(
        label="Expected range (km)",
        required=False,
        min_value=1,
        max_value=1_000_000,
        error_messages={
            "min_value": "The range must be above 0 km.",
            "max_value": "That range is too large; check the number.",
            "invalid": "Enter a whole number of kilometres.",
        },
    )
    average_consumption = forms.DecimalField(
        label="Average consumption (kWh/100 km)",
        required=False,
        min_value=Decimal("0.01"),
        max_digits=6,
        decimal_places=2,
        help_text="Up to two decimals, e.g. 18.5. With it, the estimated energy is shown.",
        error_messages={
            "min_value": "The consumption must be above 0.",
            "max_decimal_places": "Use at most two decimals.",
            "max_digits": "That consumption is too large; check the number.",
            "max_whole_digits": "That consumption is too large; check the number.",
            "invalid": "Enter a number, like 18.5.",
        },
    )
    expected_charge_kwh = forms.IntegerField(
        label="Expected charge (kWh)",
        required=False,
        min_value=1,
        max_value=1_000_000,
        error_messages={
            "min_value": "The charge must be above 0 kWh.",
            "max_value": "That charge is too large; check the number.",
            "invalid": "Enter a whole number of kWh.",
        },
    )
    status_note = forms.CharField(
        label="Note to MINT (status)",
        required=False,
        max_length=200,
        validators=[validate_one_line_text],
        help_text="Optional, up to 200 characters. Empty: a tracing text such as "
        "“mintportal plan 42 rev 3 by alice” is sent.",
    )

    #: The plan's content fingerprint when the form was opened (edit only): see plan_update.
    seen = forms.CharField(widget=forms.HiddenInput, required=False)
    #: The guards' warnings shown on the last try, and whether to save in spite of them.
    warnings_shown = forms.CharField(widget=forms.HiddenInput, required=False)
    save_anyway = forms.BooleanField(
        label="Save anyway: I have read the warnings above", required=False
    )

    def __init__(self, *args, mint_messages: list[str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        current = self.initial.get("location")
        # Keep an inactive site selectable on an old plan, so the page shows where the plan is;
        # the service then says plainly that the site is no longer active.
        current_pk = current.pk if isinstance(current, Location) else current
        self.fields["location"].queryset = selectors.plan_form_locations(current_pk=current_pk)
        vehicle = self.initial.get("vehicle")
        self.fields["vehicle"].queryset = selectors.plan_form_vehicles(
            current_pk=vehicle.pk if isinstance(vehicle, Vehicle) else vehicle
        )
        self.guard_warnings: list[Finding] = []
        self.has_mint_messages = bool(mint_messages)
        self.mint_top_messages: list[str] = []
        for field in self.fields.values():
            field.mint_notes = []
            field.guard_notes = []
        for message in mint_messages or []:
            name = mint_message_field(message)
            if name:
                self.fields[name].mint_notes.append(message)
            else:
                self.mint_top_messages.append(message)
        #: "Ends the next day: Tue 2 Dec 05:45 CET": the plan's (``initial_from_plan``), then
        #: the typed times' once they are read (``_clean_times``).
        self.end_note = "" if self.is_bound else self.initial.get("end_note", "")
        self._describe_inputs()

    def _describe_inputs(self) -> None:
        """Point each input at its error, MINT note, UTC hint and help (ids from ``_field.html``).

        Django links only help and errors; an id that is not on the page is ignored by readers.
        """
        for name, field in self.fields.items():
            if name in ("target_kind", "save_anyway"):
                continue
            auto_id = self[name].auto_id
            parts = ["error"]
            if field.mint_notes:
                parts.append("mint")
            if name in _GUARDED_FIELDS:
                parts.append("warning")
            if name in ("start_local", "end_local"):
                parts.append("utc")
            if name == "end_local":
                parts.append("day")
            if field.help_text:
                parts.append("helptext")
            field.widget.attrs["aria-describedby"] = " ".join(f"{auto_id}_{p}" for p in parts)

    @classmethod
    def initial_from_plan(cls, plan: Plan) -> dict:
        """The form's initial values: the plan's times on its site's clock."""
        zone = plan.location.time_zone
        start = utc_to_wall(plan.scheduled_start, zone)
        return {
            "vehicle": plan.vehicle,
            "location": plan.location,
            "start_date": start.date(),
            "start_local": start.time(),
            "end_local": end_text(start, utc_to_wall(plan.scheduled_end, zone)),
            "end_note": end_day_note(plan.scheduled_start, plan.scheduled_end, zone),
            "target_kind": plan.target_kind,
            "expected_range_km": plan.expected_range_km,
            "average_consumption": plan.average_consumption,
            "expected_charge_kwh": plan.expected_charge_kwh,
            "status_note": plan.status_note,
            "seen": plan.content_fingerprint,
        }

    def site_zones(self) -> dict[str, str]:
        """``{location pk: IANA zone}`` for the page's script that shows UTC beside each time."""
        return {str(loc.pk): loc.time_zone for loc in self.fields["location"].queryset}

    def vehicle_facts(self) -> dict[str, dict]:
        """What the page's script needs to fill in the site and consumption when a vehicle is
        picked, and to convert kWh and km both ways."""
        return {
            str(v.pk): {
                "name": v.name,
                "site": str(v.home_location_id),
                "consumption": f"{v.default_consumption:f}",
                "battery": f"{v.battery_kwh:f}",
                "kw": f"{v.max_charge_kw:f}",
            }
            for v in self.fields["vehicle"].queryset
        }

    def show_warnings(self, warnings: list[Finding]) -> None:
        """Put the guards' warnings beside the fields they are about and offer "save anyway",
        which then accepts exactly these."""
        self.guard_warnings = warnings
        for warning in warnings:
            self.fields[warning.field].guard_notes.append(warning.text)
        self.data = self.data.copy()
        self.data[self.add_prefix("warnings_shown")] = ",".join(sorted(w.code for w in warnings))
        self.data[self.add_prefix("save_anyway")] = ""

    def accepted_warnings(self) -> set[str]:
        """The warnings the dispatcher chose to save in spite of: the ones shown, if ticked."""
        if not self.cleaned_data.get("save_anyway"):
            return set()
        shown = set(self.cleaned_data.get("warnings_shown", "").split(","))
        return shown & set(WARNING_CODES)

    def _typed(self, name: str) -> bool:
        """Whether the dispatcher put anything in ``name``, valid or not."""
        if self.cleaned_data.get(name) is not None:
            return True
        return bool(str(self.data.get(self.add_prefix(name), "")).strip())

    def clean(self) -> dict:
        cleaned = super().clean()
        self._clean_target(cleaned.get("target_kind"))
        self._clean_times(cleaned)
        return cleaned

    def _clean_target(self, kind: str | None) -> None:
        if kind == TargetKind.RANGE:
            if self._typed("expected_charge_kwh"):
                self.add_error(
                    "expected_charge_kwh",
                    "Charge is only for a charge plan; clear it or choose Charge.",
                )
            if self.cleaned_data.get("expected_range_km") is None and not self.has_error(
                "expected_range_km"
            ):
                self.add_error("expected_range_km", "Enter the expected range in km.")
        elif kind == TargetKind.CHARGE:
            if self._typed("expected_range_km"):
                self.add_error(
                    "expected_range_km",
                    "Range is only for a range plan; clear it or choose Range.",
                )
            if self._typed("average_consumption"):
                self.add_error(
                    "average_consumption",
                    "Average consumption is only for a range plan; clear it or choose Range.",
                )
            if self.cleaned_data.get("expected_charge_kwh") is None and not self.has_error(
                "expected_charge_kwh"
            ):
                self.add_error("expected_charge_kwh", "Enter the expected charge in kWh.")

    def _clean_times(self, cleaned: dict) -> None:
        """Put the date and the two times together on the site's clock, then convert to UTC.

        A bare end time earlier than the start is the next day (18:30 → 05:45 is the usual
        overnight charge); an end equal to the start is refused rather than read as 24 hours.
        """
        today = timezone.now().date()
        day, start_at, end = (cleaned.get(n) for n in ("start_date", "start_local", "end_local"))
        if day and abs(day.year - today.year) > 1:
            # Said here, on the field typed: a two-digit year (26 → 0026) is the usual slip.
            self.add_error("start_date", f"Check the year: {day.year:04d} is too far from today.")
            day = None
        end_day, end_at = end or (None, None)
        if end_day and abs(end_day.year - today.year) > 1:
            self.add_error(
                "end_local", f"Check the year: {end_day.year:04d} is too far from today."
            )
            end_at = None
        location = cleaned.get("location")
        if location is None:
            return
        walls = {}
        if day and start_at:
            walls["start_local"] = datetime.combine(day, start_at)
        if end_at and end_day:
            walls["end_local"] = datetime.combine(end_day, end_at)
        elif end_at and day and start_at:
            if end_at == start_at:
                self.add_error(
                    "end_local",
                    "The end is the same time as the start. For a stay of a day or more, type "
                    f"the end's date too, like {day + timedelta(days=1):%Y-%m-%d} {end_at:%H:%M}.",
                )
            else:
                end_on = day if end_at > start_at else day + timedelta(days=1)
                walls["end_local"] = datetime.combine(end_on, end_at)
        instants = {}
        for name, wall in walls.items():
            try:
                instants[name] = local_to_utc(wall, location.time_zone)
            except LocalTimeError as exc:
                self.add_error(name, str(exc))
        start, end = instants.get("start_local"), instants.get("end_local")
        if start and end:
            if end <= start:
                self.add_error("end_local", "The end must be after the start.")
            else:
                problems = plan_window_errors(
                    start, end, zone=location.time_zone, now=timezone.now()
                )
                for field, message in problems.items():
                    self.add_error(SERVICE_FIELD_TO_FORM_FIELD[field], message)
        if "start_local" in self.cleaned_data and start:
            self.cleaned_data["scheduled_start"] = start
        if "end_local" in self.cleaned_data and end:
            self.cleaned_data["scheduled_end"] = end
            if start:
                self.end_note = end_day_note(start, end, location.time_zone)

    def plan_values(self) -> dict:
        """The cleaned form as the keyword arguments of ``plan_create`` / ``plan_update`` (which
        clear the fields of the target not chosen)."""
        data = self.cleaned_data
        return {
            "vehicle": data.get("vehicle"),
            "location": data["location"],
            "scheduled_start": data["scheduled_start"],
            "scheduled_end": data["scheduled_end"],
            "target_kind": data["target_kind"],
            "expected_range_km": data.get("expected_range_km"),
            "average_consumption": data.get("average_consumption"),
            "expected_charge_kwh": data.get("expected_charge_kwh"),
            "status_note": data.get("status_note", ""),
        }

    def add_service_errors(self, exc: ValidationError) -> None:
        add_service_errors(self, exc)


class PlanCancelForm(forms.Form):
    reason = forms.CharField(
        label="Why is it called off?",
        max_length=500,
        validators=[validate_one_line_text],
        widget=forms.TextInput(attrs={"placeholder": "e.g. bus in the workshop"}),
        help_text="Kept in the plan's history with your name.",
        error_messages={"required": "Say why the plan is called off."},
    )


def end_text(start: datetime, end: datetime) -> str:
    """The end input's text for a plan: a bare ``05:45`` when the form's rule gives back that day
    (the start's day, or the next one when earlier than the start), else with its date."""
    if end.date() == start.date() and end.time() > start.time():
        return f"{end:%H:%M}"
    if end.date() == start.date() + timedelta(days=1) and end.time() < start.time():
        return f"{end:%H:%M}"
    return f"{end:%Y-%m-%d %H:%M}"


def end_day_note(start: datetime, end: datetime, zone: str) -> str:
    """``Ends the next day: Tue 2 Dec 05:45 CET``, or ``Ends 2 days later: …``; empty when the
    plan ends on the day it starts. The page's script writes the same while typing."""
    start_local, end_local = utc_to_local(start, zone), utc_to_local(end, zone)
    days = (end_local.date() - start_local.date()).days
    if days <= 0:
        return ""
    later = "the next day" if days == 1 else f"{days} days later"
    return f"Ends {later}: {wall_text(end_local)}"


def add_service_errors(form: forms.Form, exc: ValidationError) -> None:
    """Put a service's ``ValidationError`` back beside the fields it is about."""
    if not hasattr(exc, "error_dict"):
        for message in exc.messages:
            form.add_error(None, message)
        return
    for field, messages in exc.message_dict.items():
        name = SERVICE_FIELD_TO_FORM_FIELD.get(field, field)
        if name == NON_FIELD_ERRORS or name not in form.fields:
            name = None
        for message in messages:
            form.add_error(name, message)


def mint_message_field(message: str) -> str | None:
    """The form field a MINT validation message is about, or ``None`` for the top of the form.

    ``"expectedRange: must be …"`` names its field first; otherwise a message that mentions
    exactly one of MINT's field names belongs to that field (``"Unknown locationId 'X'."``).
    """
    match = _LEADING_NAME.match(message)
    if match and match.group(1) in MINT_FIELD_TO_FORM_FIELD:
        return MINT_FIELD_TO_FORM_FIELD[match.group(1)]
    mentioned = {
        form_field
        for mint_field, form_field in MINT_FIELD_TO_FORM_FIELD.items()
        if mint_field != "status" and re.search(rf"\b{mint_field}\b", message)
    }
    return mentioned.pop() if len(mentioned) == 1 else None


#: Days the list can filter on: the calendar's last day has no next day to end the range with.
FILTER_DAYS = (date(1970, 1, 1), date(9998, 12, 31))


class PlanFilterForm(forms.Form):
    """The plan list's filters, read from the query string. A value that cannot be read gets an
    error beside its field, and the list then shows nothing (see ``views.plan_list``)."""

    site = forms.ModelChoiceField(
        label="Site",
        queryset=Location.objects.order_by("name"),
        required=False,
        empty_label="All sites",
        error_messages={"invalid_choice": "There is no such site; choose one from the list."},
    )
    #: Set by the links on the vehicle pages ("bus 12's plans"); a hidden field, so the list
    #: does not read every vehicle for a menu (search also finds a vehicle by name).
    vehicle = forms.ModelChoiceField(
        label="Vehicle",
        queryset=Vehicle.objects.all(),
        required=False,
        widget=forms.HiddenInput,
        error_messages={"invalid_choice": "There is no such vehicle; choose one from the list."},
    )
    state = forms.ChoiceField(
        label="State",
        choices=[("", "All but called off"), *PlanState.choices],
        required=False,
        error_messages={"invalid_choice": "There is no such state; choose one from the list."},
    )
    delivery = forms.ChoiceField(
        label="Delivery",
        choices=[
            ("", "Any"),
            ("delivered", "Delivered"),
            ("pending", "Pending"),
            ("failed", "Failed or rejected"),
            ("called_off", "Withdrawn or cancelled"),
        ],
        required=False,
        error_messages={"invalid_choice": "Choose one of the listed delivery states."},
    )
    day = forms.DateField(
        label="Day",
        help_text="On the chosen site's clock; in UTC when no site is chosen.",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        input_formats=["%Y-%m-%d"],
    )
    q = forms.CharField(
        label="Search",
        required=False,
        max_length=100,
        widget=forms.TextInput(
            attrs={
                "type": "search",
                "placeholder": "Site, vehicle, MINT ID, note, plan no., transactionId",
            }
        ),
    )

    def clean_day(self) -> date | None:
        day = self.cleaned_data.get("day")
        if day and not FILTER_DAYS[0] <= day <= FILTER_DAYS[1]:
            raise forms.ValidationError(
                f"Choose a day between {FILTER_DAYS[0]:%Y-%m-%d} and {FILTER_DAYS[1]:%Y-%m-%d}."
            )
        return day

    def filters(self) -> PlanFilters:
        """The filters of a valid form."""
        data = self.cleaned_data
        site = data.get("site")
        vehicle = data.get("vehicle")
        return PlanFilters(
            location_id=site.pk if site else None,
            vehicle_id=vehicle.pk if vehicle else None,
            state=data.get("state") or "",
            delivery=data.get("delivery") or "",
            day=data.get("day"),
            query=(data.get("q") or "").strip(),
            time_zone=site.time_zone if site else "",
        )

    def is_filtered(self) -> bool:
        return any(self.data.get(name) for name in self.fields)


_WEEKDAY_CHOICES = [(str(n), name) for n, name in WEEKDAYS.items()]
_DEPART_DAY_CHOICES = [
    (0, "the same day"),
    (1, "the next day"),
    (2, "2 days later"),
    (3, "3 days later"),
    (4, "4 days later"),
    (5, "5 days later"),
    (6, "6 days later"),
]


class ScheduleForm(forms.Form):
    """A weekly schedule as the dispatcher types it: wall-clock times on the site's clock."""

    vehicle = VehicleChoiceField(
        label="Vehicle",
        queryset=Vehicle.objects.none(),
        empty_label="Choose a vehicle…",
        error_messages={"required": "Choose the vehicle this schedule is for."},
    )
    location = LocationChoiceField(
        label="Site",
        queryset=Location.objects.none(),
        empty_label="Choose a site…",
        error_messages={"required": "Choose the site the vehicle comes to."},
    )
    weekdays = forms.MultipleChoiceField(
        label="Arrives on",
        choices=_WEEKDAY_CHOICES,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Tick at least one weekday."},
    )
    arrive_at = WallTimeField(
        label="Arrives at (site time)",
        error_messages={"required": "Enter when the vehicle arrives, like 18:30."},
    )
    depart_at = WallTimeField(
        label="Leaves at (site time)",
        error_messages={"required": "Enter when the vehicle leaves, like 05:45."},
    )
    depart_day_offset = forms.TypedChoiceField(
        label="Leaves on", choices=_DEPART_DAY_CHOICES, coerce=int, initial=0
    )
    target_kind = PlanForm.base_fields["target_kind"]
    expected_range_km = PlanForm.base_fields["expected_range_km"]
    average_consumption = PlanForm.base_fields["average_consumption"]
    expected_charge_kwh = PlanForm.base_fields["expected_charge_kwh"]
    status_note = PlanForm.base_fields["status_note"]
    valid_from = forms.DateField(
        label="First day",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        input_formats=["%Y-%m-%d"],
        error_messages={"required": "Enter the first day of the schedule."},
    )
    valid_until = forms.DateField(
        label="Last day",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        input_formats=["%Y-%m-%d"],
        help_text="Empty: until it is ended.",
    )
    auto_submit = forms.BooleanField(
        label="Submit each plan to MINT as soon as it is made", required=False
    )
    warnings_shown = forms.CharField(widget=forms.HiddenInput, required=False)
    save_anyway = forms.BooleanField(
        label="Save anyway: I have read the warnings in the preview", required=False
    )
    #: The schedule's revision when the edit was reviewed (edit only).
    seen_revision = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        vehicle, location = self.initial.get("vehicle"), self.initial.get("location")
        self.fields["vehicle"].queryset = selectors.plan_form_vehicles(
            current_pk=getattr(vehicle, "pk", vehicle)
        )
        self.fields["location"].queryset = selectors.plan_form_locations(
            current_pk=getattr(location, "pk", location)
        )
        for field in self.fields.values():
            field.mint_notes = []
            field.guard_notes = []

    @classmethod
    def initial_from_schedule(cls, schedule: Schedule) -> dict:
        return {
            **{name: getattr(schedule, name) for name in SCHEDULE_FORM_FIELDS},
            "weekdays": list(schedule.weekdays),
            "seen_revision": schedule.revision,
        }

    def vehicle_facts(self) -> dict[str, dict]:
        return {
            str(v.pk): {"site": str(v.home_location_id), "name": v.name}
            for v in self.fields["vehicle"].queryset
        }

    def clean(self) -> dict:
        cleaned = super().clean()
        kind = cleaned.get("target_kind")
        needed = {
            TargetKind.RANGE: ("expected_range_km", "Enter the expected range in km."),
            TargetKind.CHARGE: ("expected_charge_kwh", "Enter the expected charge in kWh."),
        }
        if kind in needed:
            name, message = needed[kind]
            if cleaned.get(name) is None and not self.has_error(name):
                self.add_error(name, message)
        first, last = cleaned.get("valid_from"), cleaned.get("valid_until")
        if first and last and last < first:
            self.add_error("valid_until", "The last day must not be before the first.")
        return cleaned

    def schedule_values(self) -> dict:
        """The cleaned form as ``schedule_create`` / ``schedule_update`` keywords."""
        data = self.cleaned_data
        values = {name: data.get(name) for name in SCHEDULE_FORM_FIELDS}
        values["weekdays"] = "".join(sorted(data["weekdays"]))
        values["status_note"] = data.get("status_note") or ""
        if values["target_kind"] == TargetKind.RANGE:
            values["expected_charge_kwh"] = None
        else:
            values["expected_range_km"] = values["average_consumption"] = None
        return values

    def unsaved(self, schedule: Schedule | None = None) -> Schedule:
        """The schedule as typed, not saved: what the preview works out occurrences for."""
        unsaved = Schedule(pk=schedule.pk if schedule else None)
        if schedule is not None:
            unsaved.revision = schedule.revision
        for name, value in self.schedule_values().items():
            setattr(unsaved, name, value)
        unsaved.time_zone = unsaved.location.time_zone
        return unsaved

    def accepted_warnings(self) -> bool:
        return bool(self.cleaned_data.get("save_anyway"))

    def add_service_errors(self, exc: ValidationError) -> None:
        add_service_errors(self, exc)


#: The fields a dispatcher sets on a schedule, weekdays aside (a list in the form, a string in
#: the service).
SCHEDULE_FORM_FIELDS = tuple(name for name in SCHEDULE_FIELDS if name != "weekdays")


class ScheduleExceptionForm(forms.Form):
    kind = forms.ChoiceField(choices=ScheduleException.Kind.choices, widget=forms.HiddenInput)
    first_day = forms.DateField(
        label="From",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        input_formats=["%Y-%m-%d"],
        error_messages={"required": "Enter the day."},
    )
    last_day = forms.DateField(
        label="To (included)",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        input_formats=["%Y-%m-%d"],
    )
    reason = forms.CharField(
        label="Why", required=False, max_length=200, validators=[validate_one_line_text]
    )

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("first_day") and not cleaned.get("last_day"):
            cleaned["last_day"] = cleaned["first_day"]
        if cleaned.get("kind") == ScheduleException.Kind.SKIP:
            cleaned["last_day"] = cleaned.get("first_day")
        first, last = cleaned.get("first_day"), cleaned.get("last_day")
        if first and last and last < first:
            self.add_error("last_day", "The last day must not be before the first.")
        return cleaned


class ScheduleEndForm(forms.Form):
    last_day = forms.DateField(
        label="Last day with a plan",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        input_formats=["%Y-%m-%d"],
        error_messages={"required": "Enter the schedule's last day."},
    )


class ImportUploadForm(forms.Form):
    """A spreadsheet to preview as plans (``plans.services.imports``)."""

    file = forms.FileField(
        label="File (CSV or Excel .xlsx)",
        help_text="At most 5 MB and 10,000 rows. Nothing is saved until you confirm the preview.",
        error_messages={"required": "Choose the file to import."},
    )
    complete = forms.BooleanField(
        label="This file is the complete plan for these sites and days",
        required=False,
        help_text="Plans at the file's sites on the file's days that no row matches will be "
        "called off (the preview lists them).",
    )


class CopyDayForm(forms.Form):
    """Copy every plan of one day at a site (or every site) to another day or days."""

    location = LocationChoiceField(
        label="Site",
        queryset=Location.objects.none(),
        required=False,
        empty_label="All sites",
    )
    day = forms.DateField(
        label="Copy the plans of",
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"required": "Choose the day to copy.", "invalid": "Enter a date."},
    )
    first = forms.DateField(
        label="To the day",
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"required": "Choose the day to copy to.", "invalid": "Enter a date."},
    )
    last = forms.DateField(
        label="Through the day (optional)",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="For a range of days; empty: only the one day.",
        error_messages={"invalid": "Enter a date."},
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["location"].queryset = Location.objects.filter(is_active=True)

    def clean(self) -> dict:
        from plans.services.imports import COPY_MAX_DAYS

        cleaned = super().clean()
        day, first = cleaned.get("day"), cleaned.get("first")
        if day is None or first is None:
            return cleaned
        last = cleaned.get("last") or first
        cleaned["last"] = last
        if last < first:
            self.add_error("last", "The last day must be on or after the first.")
        elif (last - first).days >= COPY_MAX_DAYS:
            self.add_error("last", f"Copy to at most {COPY_MAX_DAYS} days at once.")
        elif first <= day <= last:
            self.add_error("first", "Copy to other days than the one copied.")
        return cleaned


class BatchConfirmForm(forms.Form):
    """Confirm a bulk preview: accept its warnings, and submit what it saves."""

    accept_warnings = forms.BooleanField(
        label="Save anyway: I have read the warnings above", required=False
    )
    submit = forms.BooleanField(
        label="Submit the new and changed plans to MINT now", required=False
    )


class RetrySinceForm(forms.Form):
    """ "Retry every plan that failed since …": a day and a 24-hour time typed on a clock the
    dispatcher names (the portal has sites in several zones, and a failure time means nothing
    without one)."""

    since_day = DayField(label="Failed since (day)")
    since_time = WallTimeField(label="At (24-hour time)")
    zone = forms.ChoiceField(
        label="On the clock of",
        error_messages={"invalid_choice": "Choose one of the listed time zones."},
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        zones = selectors.site_zones()
        self.fields["zone"].choices = [(z, z) for z in zones]
        self.fields["zone"].initial = zones[0]

    def clean(self) -> dict:
        cleaned = super().clean()
        day, at, zone = (cleaned.get(k) for k in ("since_day", "since_time", "zone"))
        if day is None or at is None or not zone:
            return cleaned
        try:
            cleaned["since_utc"] = local_to_utc(datetime.combine(day, at), zone)
        except LocalTimeError as exc:
            self.add_error("since_time", str(exc))
            return cleaned
        if cleaned["since_utc"] > timezone.now():
            self.add_error("since_time", "This time is still to come; choose one in the past.")
        return cleaned


#: The handover page's spans, in hours; a shift is eight.
SHIFT_HOURS = (4, 8, 12, 24)
SHIFT_DEFAULT_HOURS = 8


class ShiftForm(forms.Form):
    """The handover page's span and page, read from the query string. A value it cannot read
    gets an error beside its field, and the page shows the default instead."""

    hours = forms.TypedChoiceField(
        label="Show the next",
        choices=[(h, f"{h} hours") for h in SHIFT_HOURS],
        coerce=int,
        required=False,
        empty_value=SHIFT_DEFAULT_HOURS,
        error_messages={
            "invalid_choice": f"Choose 4, 8, 12 or 24 hours; the next {SHIFT_DEFAULT_HOURS} "
            f"hours are shown."
        },
    )
    page = forms.IntegerField(min_value=1, max_value=10**6, required=False)

    def span(self) -> int:
        """The hours to show: the chosen ones, or the default when the choice cannot be read."""
        self.is_valid()
        return self.cleaned_data.get("hours") or SHIFT_DEFAULT_HOURS

    def page_number(self) -> int:
        self.is_valid()
        return self.cleaned_data.get("page") or 1
