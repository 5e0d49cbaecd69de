"""Texts in Norwegian bokmål and English, keyed by message id, and dates written the way each language does.

`t(locale, key, **values)`: any locale starting with "en" gets English, everything else bokmål (the default).
"""

from __future__ import annotations

import datetime as dt

MONTHS_NB = ("januar", "februar", "mars", "april", "mai", "juni", "juli", "august", "september", "oktober",
             "november", "desember")
MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
             "November", "December")

CATALOG: dict[str, dict[str, str]] = {
    "nb": {
        "status.upcoming": "kommer",
        "status.open": "åpen",
        "status.done": "utført",
        "status.overdue": "forfalt",
        "scope.unit": "hele enheten",
        "due.header": "Frister {period}",
        "due.none": "Ingen oppgaver i perioden.",
        "due.window": "{start} – {end}",
        "due.deadline": "frist {date}",
        "due.done_by": "utført {date} av {who}",
        "period.range": "{start} – {end}",
        "role.hmsb_adviser": "HMSB-rådgiver",
        "role.unit_head": "leder for {unit}",
        "role.management_group": "medlem av ledergruppen",
        "role.lamu": "medlem av LAMU",
        "role.section_leader": "seksjonsleder for {scope}",
        "role.safety_rep": "verneombud for {scope}",
        "role.floor_contact": "etasjekontakt for {scope}",
        "role.floor_deputy": "vara etasjekontakt for {scope}",
        "sends.floor_contact": "Påminnelse om brannvernrunden hvert kvartal, med sjekklisten rett i chatten",
        "sends.floor_deputy": "Brannvernrunden når etasjekontakten er borte",
        "sends.section_leader": "Vernerunden, innspill til handlingsplanen, årsrapporten og tiltak som må følges opp",
        "sends.safety_rep": "Invitasjon til vernerunden i seksjonen",
        "sends.hmsb_adviser": "Ukentlig status, dokumentasjon fra alle runder og varsel om det som ikke blir gjort",
        "sends.management_group": "Handlingsplan, ledelsens gjennomgang og fokusområder",
        "sends.unit_head": "Handlingsplan, ledelsens gjennomgang og fokusområder",
        "sends.lamu": "Oppsummeringer i LAMU-kanalen",
        "welcome.title": "Hei, {name}!",
        "welcome.intro": "Jeg er HMS-hjulet, {unit}s assistent for det systematiske HMS-arbeidet. Jeg minner om frister i årshjulet, tar imot sjekklister og følger opp tiltak til de er lukket.",
        "welcome.roles": "Jeg kjenner deg som",
        "welcome.no_roles": "Du har ingen faste HMS-roller hos meg, men du kan alltid spørre hva som forfaller.",
        "welcome.sends": "Dette vil jeg sende deg",
        "welcome.ask": "Du kan for eksempel spørre",
        "examples": "«hva forfaller denne måneden?», «mine oppgaver», «åpne tiltak», «start brannvernrunde», «meld uønsket hendelse»",
        "unknown_user.title": "Jeg kjenner deg ikke ennå",
        "unknown_user.body": "Du står ikke i HMS-oversikten for {unit}, så jeg kan ikke vise deg oppgaver eller frister.",
        "unknown_user.contact": "Ta kontakt med HMSB-rådgiver {name} ({email}) hvis du skal ha en rolle i HMS-arbeidet.",
        "help.title": "Dette kan jeg hjelpe med",
        "help.short": "Det forsto jeg ikke helt. Prøv for eksempel:",
        "help.items": "«hva forfaller denne måneden?» – frister i en periode (også «neste uke», «mars», «dette kvartalet»)\n- «hva er forsinket?» – det som har passert fristen\n- «mine oppgaver» – det som ligger på deg\n- «status» eller «status for samlingsforvaltning»\n- «åpne tiltak» – avvik som ikke er lukket\n- «start brannvernrunde» eller «start vernerunde»\n- «meld uønsket hendelse» – lenke til CIM\n- «årsrapport» – HMS-årsrapporten",
        "due.title": "Frister – {period}",
        "due.title.overdue": "Forsinket",
        "due.title.mine": "Dine oppgaver",
        "due.empty": "Ingenting forfaller i perioden for det du har ansvar for.",
        "due.empty.overdue": "Ingenting er forsinket. Bra!",
        "due.empty.mine": "Du har ingen åpne oppgaver de neste to månedene.",
        "due.more": "… og {count} til.",
        "due.scope_note": "Viser {scope}.",
        "due.scope.all": "hele enheten",
        "due.row": "**{title}** · {where}",
        "due.who": "{who} · {status}",
        "incident.title": "Meld uønsket hendelse",
        "incident.body": "Uønskede hendelser meldes i UiOs avvikssystem CIM. Det gjelder personskader, nestenulykker, vold og trusler, brann og branntilløp, skade på samlinger og andre hendelser som kunne gått galt.",
        "incident.privacy": "Skriv ikke detaljer om hendelsen eller personer her i chatten: jeg lagrer ingenting om hendelsen, CIM er stedet.",
        "incident.building": "Feil og mangler på bygget (dører, lys, slokkeutstyr) meldes til EA i Si fra-portalen.",
        "incident.open_cim": "Åpne skjemaet i CIM",
        "incident.open_sifra": "Meld feil til EA (Si fra)",
        "status.title": "Status {year}",
        "status.title.section": "Status {year} – {section}",
        "status.counts": "{done} utført · {open} åpne · {overdue} forsinket · {upcoming} kommer",
        "status.fire_rounds": "Brannvernrunder: {done} av {total} utført hittil i år",
        "status.measures": "Åpne tiltak: {count}",
        "measures.title": "Åpne tiltak",
        "measures.empty": "Ingen åpne tiltak. Alle avvik er fulgt opp.",
        "measures.row": "{description} · ansvarlig {owner} · frist {deadline} · {age} dager gammel",
        "annual.title": "HMS-årsrapport {year}",
        "annual.body": "Seksjonsleder sender inn utfylt skjema innen {due}. Rapporten legges fram for LAMU.",
        "annual.contains": "Rapporten skal vise",
        "annual.section": "{section}: {status}",
        "annual.open_form": "Åpne skjemaet",
        "annual.rounds": "{section}: brannvernrunder {fire_done}/{fire_total}, vernerunde {vernerunde}",
        "round.title": "{round} – {where}",
        "round.deadline": "Frist {due} ({cycle}). Ansvarlig: {who}.",
        "round.done": "Runden er allerede levert av {who} {when}.",
        "round.no_floor": "Hvilken etasje? Skriv for eksempel «start brannvernrunde 2. etasje».",
        "round.none": "Jeg finner ingen runde du kan starte nå.",
        "round.checklist_items": "Sjekklisten har {count} punkter.",
        "round.start_button": "Start runden",
        "yes": "ja",
        "no": "nei",
        "error.generic": "Noe gikk galt hos meg. Prøv igjen om litt; vedvarer det, si fra til HMSB-rådgiver.",
    },
    "en": {
        "status.upcoming": "upcoming",
        "status.open": "open",
        "status.done": "done",
        "status.overdue": "overdue",
        "scope.unit": "whole unit",
        "due.header": "Deadlines {period}",
        "due.none": "Nothing falls in this period.",
        "due.window": "{start} – {end}",
        "due.deadline": "due {date}",
        "due.done_by": "done {date} by {who}",
        "period.range": "{start} – {end}",
        "role.hmsb_adviser": "HMS and emergency-preparedness adviser",
        "role.unit_head": "head of {unit}",
        "role.management_group": "member of the management group",
        "role.lamu": "member of LAMU",
        "role.section_leader": "section leader for {scope}",
        "role.safety_rep": "safety representative for {scope}",
        "role.floor_contact": "floor contact for {scope}",
        "role.floor_deputy": "deputy floor contact for {scope}",
        "sends.floor_contact": "A reminder of the fire round every quarter, with the checklist right in the chat",
        "sends.floor_deputy": "The fire round when the floor contact is away",
        "sends.section_leader": "The safety round, action-plan input, the annual report and measures to follow up",
        "sends.safety_rep": "An invitation to the section's safety round",
        "sends.hmsb_adviser": "A weekly status, the documentation of every round, and word of what is not done",
        "sends.management_group": "The action plan, the management review and the focus areas",
        "sends.unit_head": "The action plan, the management review and the focus areas",
        "sends.lamu": "Summaries in the LAMU channel",
        "welcome.title": "Hi, {name}!",
        "welcome.intro": "I am HMS-hjulet, the assistant for {unit}'s systematic HMS work. I remind you of the wheel's deadlines, take checklists in the chat and follow up measures until they are closed.",
        "welcome.roles": "I know you as",
        "welcome.no_roles": "You hold no HMS role with me, but you can always ask what is due.",
        "welcome.sends": "What I will send you",
        "welcome.ask": "You can ask, for example",
        "examples": "\"what's due this month?\", \"my tasks\", \"open measures\", \"start fire round\", \"report an incident\"",
        "unknown_user.title": "I don't know you yet",
        "unknown_user.body": "You are not in {unit}'s HMS register, so I cannot show you tasks or deadlines.",
        "unknown_user.contact": "Please contact the HMS adviser {name} ({email}) if you should have a role in the HMS work.",
        "help.title": "Here is what I can help with",
        "help.short": "I did not quite get that. Try for example:",
        "help.items": "\"what's due this month?\" – deadlines in a period (also \"next week\", \"March\", \"this quarter\")\n- \"what is overdue?\"\n- \"my tasks\"\n- \"status\" or \"status for collection management\"\n- \"open measures\" – deviations not yet closed\n- \"start fire round\" or \"start safety round\"\n- \"report an incident\" – link to CIM\n- \"annual report\"",
        "due.title": "Deadlines – {period}",
        "due.title.overdue": "Overdue",
        "due.title.mine": "Your tasks",
        "due.empty": "Nothing you are responsible for is due in this period.",
        "due.empty.overdue": "Nothing is overdue. Well done!",
        "due.empty.mine": "You have no open tasks in the next two months.",
        "due.more": "… and {count} more.",
        "due.scope_note": "Showing {scope}.",
        "due.scope.all": "the whole unit",
        "due.row": "**{title}** · {where}",
        "due.who": "{who} · {status}",
        "incident.title": "Report an unwanted incident",
        "incident.body": "Unwanted incidents are reported in UiO's deviation system CIM: injuries, near misses, violence and threats, fire, damage to the collections and other events that could have gone wrong.",
        "incident.privacy": "Please do not write details of the incident or of people here in the chat: I store nothing about incidents; CIM is the place.",
        "incident.building": "Faults in the building (doors, lights, extinguishers) go to EA through the Si fra portal.",
        "incident.open_cim": "Open the form in CIM",
        "incident.open_sifra": "Report a fault to EA (Si fra)",
        "status.title": "Status {year}",
        "status.title.section": "Status {year} – {section}",
        "status.counts": "{done} done · {open} open · {overdue} overdue · {upcoming} upcoming",
        "status.fire_rounds": "Fire rounds: {done} of {total} done so far this year",
        "status.measures": "Open measures: {count}",
        "measures.title": "Open measures",
        "measures.empty": "No open measures. Every deviation has been followed up.",
        "measures.row": "{description} · owner {owner} · due {deadline} · {age} days old",
        "annual.title": "HMS annual report {year}",
        "annual.body": "The section leader submits the completed form by {due}. The report is presented to LAMU.",
        "annual.contains": "The report shows",
        "annual.section": "{section}: {status}",
        "annual.open_form": "Open the form",
        "annual.rounds": "{section}: fire rounds {fire_done}/{fire_total}, safety round {vernerunde}",
        "round.title": "{round} – {where}",
        "round.deadline": "Due {due} ({cycle}). Responsible: {who}.",
        "round.done": "This round was already submitted by {who} {when}.",
        "round.no_floor": "Which floor? Write for example \"start fire round 2nd floor\".",
        "round.none": "I find no round you can start now.",
        "round.checklist_items": "The checklist has {count} items.",
        "round.start_button": "Start the round",
        "yes": "yes",
        "no": "no",
        "error.generic": "Something went wrong on my side. Please try again shortly; if it persists, tell the HMS adviser.",
    },
}


def lang(locale: str | None) -> str:
    """The catalog language for a Teams or user locale ('en-US' -> 'en', 'nb-NO', None, 'nn' -> 'nb')."""
    return "en" if (locale or "").lower().startswith("en") else "nb"


def t(locale: str | None, key: str, **values: object) -> str:
    """The text for `key` in the locale's language, falling back to bokmål, then to the key itself."""
    text = CATALOG[lang(locale)].get(key) or CATALOG["nb"].get(key) or key
    return text.format(**values) if values else text


def format_date(day: dt.date, locale: str | None, *, year: bool = True) -> str:
    """'1. juli 2027' in bokmål, '1 July 2027' in English; without the year when `year` is False."""
    if lang(locale) == "en":
        s = f"{day.day} {MONTHS_EN[day.month - 1]}"
    else:
        s = f"{day.day}. {MONTHS_NB[day.month - 1]}"
    return f"{s} {day.year}" if year else s


def format_datetime(moment: dt.datetime, locale: str | None, *, year: bool = False) -> str:
    """'3. mars 09:12' (local wall-clock time of an aware datetime, as given)."""
    return f"{format_date(moment.date(), locale, year=year)} {moment:%H:%M}"


def format_period(start: dt.date, end: dt.date, locale: str | None) -> str:
    """A period as people say it: 'november 2026', '1. – 7. mars 2027', '1. januar – 31. desember 2027'."""
    import calendar

    if start.day == 1 and start.year == end.year and start.month == end.month and \
            end.day == calendar.monthrange(end.year, end.month)[1]:
        name = (MONTHS_EN if lang(locale) == "en" else MONTHS_NB)[start.month - 1]
        return f"{name} {start.year}"
    return t(locale, "period.range", start=format_date(start, locale, year=start.year != end.year),
             end=format_date(end, locale))
