"""ICH E2B(R3) ICSR XML parser: one file (or every ``*.xml`` of a folder) -> one :class:`Batch` per file.

A file holds one ICSR message (``PORR_IN049016UV``) or a batch (``MCCI_IN200100UV01``) of several. The XML is
untrusted: it is parsed with defusedxml on expat, which never loads a DTD, never fetches anything and refuses
any document type declaration, entity declaration or external reference with :class:`HostileInputError`
(billion laughs, XXE). Text that is not well-formed XML raises :class:`UnreadableFileError` with the line.

What is read (ICH E2B(R3) element numbers; OIDs of the ICH code lists):

- C.1.1 sender's safety report id, C.1.2 date of creation, C.1.3 type of report, C.1.4 first received,
  C.1.5 date of most recent information, C.1.8.1 worldwide unique case id (the case key),
  C.1.11.1 nullification (the case key is then deleted), C.2.r.3 primary source country (reporter country;
  the source with priority 1 first).
- D.2.2 age (UCUM unit -> years), D.2.3 age group, D.3 body weight (kg), D.5 sex.
- E.i reactions: E.i.2.1b MedDRA code; the term is the code's ``displayName`` when the sender gives it, else
  E.i.1.2 (reported term for translation), else E.i.1.1a (reported term); E.i.3.2a-f seriousness criteria (and
  FDA's regional E.i.3.2h required intervention) -> outcomes DE LT HO DS CA OT (RI); E.i.4 start date (the
  earliest is the case's event date); E.i.7 outcome; E.i.9 country of occurrence.
- G.k drugs: G.k.1 characterisation (1 suspect: the first suspect is PS, later ones SS; 2 concomitant C;
  3 interacting I; 4 drug not administered: left out, the patient was not exposed), G.k.2.2 product name,
  G.k.2.3.r.1 substance names (joined with a backslash, as FAERS prod_ai), G.k.4.r dosages (text, route,
  earliest start, latest end), G.k.7.r indications.

Versions: a version is initial (I) when C.1.5 equals C.1.4, follow-up (F) when later. A case's versions
share C.1.8.1 and usually C.1.1, so a version's ``report_id`` is C.1.1 plus ``#`` and C.1.2 as 14 digits,
and ``version`` is C.1.5 as the integer YYYYMMDD. The store keeps the highest ``version`` (then the later
``received_date`` = C.1.5, then the higher report_id), so versions are ordered by C.1.5, then by C.1.2.

An ICSR is loaded whole or not at all: a missing mandatory element (C.1.1, C.1.2, C.1.5, C.1.8.1, a reaction
E.i, a drug G.k), an identifier longer than E2B(R3) allows (C.1.1 or C.1.8.1 over 100 characters), an
impossible date, a drug without characterisation or name, or a reaction without code or term sends the whole
ICSR to quarantine (file, line of the offending element, field, reason), since a partial follow-up would
replace a complete earlier version. The other ICSRs of the file still load.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.parsers import expat

import pandas as pd
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from pv.errors import HostileInputError, UnreadableFileError
from pv.ingest.batch import (
    DRUG_COLUMNS,
    INDICATION_COLUMNS,
    MAX_CASE_KEY,
    MAX_REPORT_ID,
    QUARANTINE_COLUMNS,
    REACTION_COLUMNS,
    VERSION_COLUMNS,
    Batch,
    latest_possible_date,
)

# ICH OIDs
HL7_V3 = "urn:hl7-org:v3"  # the namespace of every E2B(R3) element
MESSAGE_TAGS = ("PORR_IN049016UV", "MCCI_IN200100UV01")
OID_REPORT_ID = "2.16.840.1.113883.3.989.2.1.3.1"  # C.1.1
MAX_C11 = 100  # E2B(R3): C.1.1 and C.1.8.1 have at most 100 characters; a report id is C.1.1 "#" and 14 digits
assert MAX_C11 + 15 <= MAX_REPORT_ID and MAX_C11 <= MAX_CASE_KEY
OID_CASE_ID = "2.16.840.1.113883.3.989.2.1.3.2"  # C.1.8.1
OID_OBSERVATION = "2.16.840.1.113883.3.989.2.1.1.19"
OID_REPORT_CHARACTERISATION = "2.16.840.1.113883.3.989.2.1.1.23"
OID_REPORT_RELATION = "2.16.840.1.113883.3.989.2.1.1.22"
OID_VALUE_GROUPING = "2.16.840.1.113883.3.989.2.1.1.20"
OID_MEDDRA = "2.16.840.1.113883.6.163"
OID_FDA_REACTION = "2.16.840.1.113883.3.989.5.1.2.2.1.3"

# codes of the observation code list (OID_OBSERVATION)
OBS_AGE, OBS_AGE_GROUP, OBS_WEIGHT = "3", "4", "7"
OBS_REACTION, OBS_TRANSLATION, OBS_OUTCOME, OBS_INDICATION = "29", "30", "27", "19"
OBS_CHARACTERISATION = "20"
SERIOUSNESS = {"34": "DE", "21": "LT", "33": "HO", "35": "DS", "12": "CA", "26": "OT"}  # E.i.3.2a-f
FDA_REQUIRED_INTERVENTION = "7"  # FDA.E.i.3.2h

REPORT_TYPES = {"1": "spontaneous", "2": "study", "3": "other", "4": "not available"}
AGE_GROUPS = {"0": "foetus", "1": "neonate", "2": "infant", "3": "child", "4": "adolescent", "5": "adult",
              "6": "elderly"}
REACTION_OUTCOMES = {"0": "unknown", "1": "recovered", "2": "recovering", "3": "not recovered",
                     "4": "recovered with sequelae", "5": "fatal"}
AGE_UNITS = {"a": 1.0, "{decade}": 10.0, "mo": 1 / 12, "wk": 7 / 365.25, "d": 1 / 365.25, "h": 1 / 8766.0,
             "min": 1 / 525960.0}
WEIGHT_UNITS = {"kg": 1.0, "g": 0.001, "[lb_av]": 0.45359237}
SUSPECT, CONCOMITANT, INTERACTING, NOT_ADMINISTERED = "1", "2", "3", "4"

_TS = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d+)?(?:[+-]\d{2,4})?")


class _Bad(Exception):
    """This ICSR cannot be loaded: goes to quarantine."""

    def __init__(self, reason: str, field: str | None, line: int | None) -> None:
        super().__init__(reason)
        self.reason, self.field, self.line = reason, field, line


# ------------------------------------------------------------------------------------------- safe parsing
class _LineTreeBuilder(ET.TreeBuilder):
    """A tree builder that drops namespaces from tags (E2B elements are all HL7 v3) and remembers the source
    line of every element."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[ET.Element, int] = {}
        self.namespaces: dict[ET.Element, str] = {}  # of the message and batch elements
        self.parser: Any = None

    def start(self, tag: str, attrs: dict[str, str]) -> ET.Element:  # type: ignore[override]
        namespace, _, local = tag.rpartition("}")
        element = super().start(local, attrs)
        self.lines[element] = self.parser.parser.CurrentLineNumber
        if local in MESSAGE_TAGS:
            self.namespaces[element] = namespace.lstrip("{")
        return element

    def end(self, tag: str) -> ET.Element:
        return super().end(tag.rpartition("}")[2])


def parse_xml(data: bytes, name: str) -> tuple[ET.Element, dict[ET.Element, int]]:
    """Parse untrusted XML: (root, element -> line). DTDs, entities and external references are refused."""
    builder = _LineTreeBuilder()
    parser = DefusedXMLParser(target=builder, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    builder.parser = parser
    try:
        parser.feed(data)
        root = parser.close()
    except DefusedXmlException as exc:
        what = {"DTDForbidden": "a document type declaration (DTD)",
                "EntitiesForbidden": "an entity declaration",
                "ExternalReferenceForbidden": "an external reference"}.get(type(exc).__name__, "a DTD")
        raise HostileInputError(
            f"refused: the file contains {what}. E2B(R3) files need none, and DTD entities can expand "
            "without bound (billion laughs) or read local files and URLs (external entities)",
            file=name, line=parser.parser.CurrentLineNumber) from exc
    except ET.ParseError as exc:
        line, column = exc.position
        reason = expat.errors.messages.get(exc.code, str(exc)) if isinstance(exc.code, int) else str(exc)
        raise UnreadableFileError(f"not well-formed XML: {reason} (column {column})", file=name,
                                  line=line) from exc
    except (ValueError, LookupError) as exc:  # e.g. an encoding expat does not know
        raise UnreadableFileError(f"cannot read as XML: {exc}", file=name) from exc
    foreign = {ns for ns in builder.namespaces.values() if ns != HL7_V3}
    if foreign:
        raise UnreadableFileError(
            f"not an E2B(R3) file: its messages are in the namespace {', '.join(sorted(map(repr, foreign)))}, "
            f"not HL7 v3 ({HL7_V3!r})", file=name)
    return root, builder.lines


# ------------------------------------------------------------------------------------------- small helpers
def _local(tag: object) -> str:
    """The tag of an element (namespaces are dropped while parsing); '' for comments."""
    return tag if isinstance(tag, str) else ""


def _kids(element: ET.Element | None, name: str) -> list[ET.Element]:
    return [] if element is None else element.findall(name)


def _kid(element: ET.Element | None, *path: str) -> ET.Element | None:
    return None if element is None else element.find("/".join(path))


def _text(element: ET.Element | None) -> str | None:
    if element is None:
        return None
    text = "".join(element.itertext()).strip()
    return " ".join(text.split()) or None


def _attr(element: ET.Element | None, name: str) -> str | None:
    if element is None:
        return None
    value = (element.get(name) or "").strip()
    return value or None


def _code_is(element: ET.Element | None, code: str, system: str) -> bool:
    c = _kid(element, "code")
    if c is None:
        return False
    return (c.get("code") or "").strip() == code and (c.get("codeSystem") or "").strip() == system


def _descendant(element: ET.Element | None, name: str) -> ET.Element | None:
    return None if element is None else element.find(f".//{name}")


@dataclass
class _Icsr:
    """What one ICSR contributes to the batch."""

    version: dict[str, Any]
    drugs: list[dict[str, Any]] = field(default_factory=list)
    reactions: list[dict[str, Any]] = field(default_factory=list)
    indications: list[dict[str, Any]] = field(default_factory=list)
    nullified: bool = False


class _Reader:
    def __init__(self, lines: dict[ET.Element, int]) -> None:
        self.lines = lines

    def line(self, element: ET.Element | None) -> int | None:
        return self.lines.get(element) if element is not None else None

    def ts(self, element: ET.Element | None, field_name: str,
           attr: str = "value") -> tuple[dt.date, str] | None:
        """An HL7 TS attribute -> (date, 14 digits); None when absent; impossible dates raise _Bad."""
        raw = _attr(element, attr)
        if raw is None:
            return None
        m = _TS.fullmatch(raw)
        if m is None:
            raise _Bad(f"impossible date {raw!r}", field_name, self.line(element))
        year = int(m.group(1))
        month = int(m.group(2) or 1)
        day = int(m.group(3) or 1)
        hour, minute, second = (int(m.group(i) or 0) for i in (4, 5, 6))
        try:
            value = dt.datetime(year, month, day, hour, minute, second)
        except ValueError:
            raise _Bad(f"impossible date {raw!r}", field_name, self.line(element)) from None
        if not 1900 <= year <= 2099:
            raise _Bad(f"impossible date {raw!r} (year outside 1900-2099)", field_name, self.line(element))
        return value.date(), value.strftime("%Y%m%d%H%M%S")

    def date(self, element: ET.Element | None, field_name: str) -> dt.date | None:
        got = self.ts(element, field_name)
        return got[0] if got else None

    def interval(self, element: ET.Element | None, start_field: str,
                 end_field: str) -> tuple[dt.date | None, dt.date | None]:
        """Start and end of an effectiveTime (TS, IVL_TS or SXPR_TS holding an IVL_TS)."""
        if element is None:
            return None, None
        if _attr(element, "value"):
            return self.date(element, start_field), None
        start = end = None
        for node in element.iter():
            tag = _local(node.tag)
            if tag == "low" and start is None:
                start = self.date(node, start_field)
            elif tag == "high" and end is None:
                end = self.date(node, end_field)
        return start, end

    # ---------------------------------------------------------------------------------------- one ICSR
    def icsr(self, message: ET.Element) -> _Icsr:
        control = _descendant(message, "controlActProcess")
        event = _kid(control, "subject", "investigationEvent")
        if event is None:
            raise _Bad("no controlActProcess/subject/investigationEvent (not an ICSR message)", "C.1",
                       self.line(message))
        report_id = case_key = None
        for ident in _kids(event, "id"):
            if _attr(ident, "root") == OID_REPORT_ID:
                report_id = _attr(ident, "extension")
            elif _attr(ident, "root") == OID_CASE_ID:
                case_key = _attr(ident, "extension")
        if not case_key:
            raise _Bad("missing worldwide unique case identifier (C.1.8.1)", "C.1.8.1", self.line(event))
        if not report_id:
            raise _Bad("missing sender's safety report unique identifier (C.1.1)", "C.1.1", self.line(event))
        if len(case_key) > MAX_CASE_KEY:
            raise _Bad(f"worldwide unique case identifier (C.1.8.1) of {len(case_key)} characters: at most "
                       f"{MAX_CASE_KEY} are allowed (E2B(R3)); the ICSR is quarantined, never cut", "C.1.8.1",
                       self.line(event))
        if len(report_id) > MAX_C11:
            raise _Bad(f"sender's safety report unique identifier (C.1.1) of {len(report_id)} characters: at most "
                       f"{MAX_C11} are allowed (E2B(R3)); the ICSR is quarantined, never cut", "C.1.1",
                       self.line(event))
        created = self.ts(_kid(control, "effectiveTime"), "C.1.2")
        if created is None:
            raise _Bad("missing date of creation (C.1.2)", "C.1.2", self.line(control))
        latest_el = _kid(event, "availabilityTime")
        latest = self.ts(latest_el, "C.1.5")
        if latest is None:
            raise _Bad("missing date of most recent information (C.1.5)", "C.1.5", self.line(event))
        if latest[0] > latest_possible_date():
            raise _Bad(f"date of most recent information (C.1.5) {latest[0]} is in the future", "C.1.5",
                       self.line(latest_el))
        first_received = self.date(_kid(event, "effectiveTime", "low"), "C.1.4")

        report_type = nullification = None
        for subject in _kids(event, "subjectOf2"):
            characteristic = _kid(subject, "investigationCharacteristic")
            code = _attr(_kid(characteristic, "value"), "code")
            if _code_is(characteristic, "1", OID_REPORT_CHARACTERISATION):
                report_type = REPORT_TYPES.get(code or "", (code or "")[:16] or None)
            elif _code_is(characteristic, "3", OID_REPORT_CHARACTERISATION):
                nullification = code

        assessment = _kid(event, "component", "adverseEventAssessment")
        role = _kid(assessment, "subject1", "primaryRole")
        player = _kid(role, "player1")
        sex_code = _attr(_kid(player, "administrativeGenderCode"), "code")
        sex = None if _kid(player, "administrativeGenderCode") is None else {"1": "M", "2": "F"}.get(
            sex_code or "", "UNK")

        age_years = weight_kg = age_group = None
        reaction_obs: list[ET.Element] = []
        drug_els: list[ET.Element] = []
        for subject in _kids(role, "subjectOf2"):
            obs = _kid(subject, "observation")
            if obs is not None:
                value = _kid(obs, "value")
                if _code_is(obs, OBS_AGE, OID_OBSERVATION):
                    age_years = _quantity(value, AGE_UNITS, 0, 150)
                elif _code_is(obs, OBS_AGE_GROUP, OID_OBSERVATION):
                    code = _attr(value, "code")
                    age_group = AGE_GROUPS.get(code or "") if code else None
                elif _code_is(obs, OBS_WEIGHT, OID_OBSERVATION):
                    weight_kg = _quantity(value, WEIGHT_UNITS, 0, 700, exclusive_low=True)
                elif _code_is(obs, OBS_REACTION, OID_OBSERVATION):
                    reaction_obs.append(obs)
            organizer = _kid(subject, "organizer")
            if organizer is not None and _code_is(organizer, "4", OID_VALUE_GROUPING):
                for component in _kids(organizer, "component"):
                    administration = _kid(component, "substanceAdministration")
                    if administration is not None:
                        drug_els.append(administration)

        keys = {"case_key": case_key, "report_id": f"{report_id}#{created[1]}"}
        result = _Icsr(version={}, nullified=nullification == "1")
        outcomes: set[str] = set()
        event_dates: list[dt.date] = []
        occurrence_country = None
        for obs in reaction_obs:
            reaction, criteria, start, country = self.reaction(obs)
            result.reactions.append({**keys, **reaction})
            outcomes |= criteria
            if start is not None:
                event_dates.append(start)
            occurrence_country = occurrence_country or country

        roles = self.characterisations(assessment)
        suspects = 0
        for seq, administration in enumerate(drug_els, start=1):
            got = self.drug(administration, roles, seq)
            if got is None:
                continue
            drug, indications = got
            if drug["role"] == "S":
                suspects += 1
                drug["role"] = "PS" if suspects == 1 else "SS"
            result.drugs.append({**keys, **drug})
            result.indications.extend({**keys, "drug_seq": seq, "term": term} for term in indications)

        if not result.nullified:  # E.i and G.k are mandatory: a version without them would lose the case's
            if not result.reactions:  # reactions or drugs when it became the current version
                raise _Bad("no reaction (E.i): an ICSR must report at least one reaction; the whole ICSR is "
                           "quarantined so that the case keeps its earlier version", "E.i", self.line(event))
            if not result.drugs:
                raise _Bad("no drug administered (G.k): an ICSR must report at least one drug; the whole ICSR "
                           "is quarantined so that the case keeps its earlier version", "G.k", self.line(event))
        result.version = {
            **keys,
            "version": int(latest[1][:8]),
            "initial_or_followup": _initial_or_followup(first_received, latest[0]),
            "received_date": latest[0],
            "initial_received_date": first_received,
            "event_date": min(event_dates) if event_dates else None,
            "age_years": age_years,
            "age_group": age_group,
            "sex": sex,
            "weight_kg": weight_kg,
            "reporter_country": self.reporter_country(event),
            "occurrence_country": occurrence_country,
            "report_type": report_type,
            "outcomes": [code for code in ("DE", "LT", "HO", "DS", "CA", "RI", "OT") if code in outcomes],
        }
        return result

    def reaction(self, obs: ET.Element) -> tuple[dict[str, Any], set[str], dt.date | None, str | None]:
        value = _kid(obs, "value")
        meddra = _attr(value, "code") if _attr(value, "codeSystem") in (OID_MEDDRA, None) else None
        translated = None
        outcome = None
        criteria: set[str] = set()
        for rel in _kids(obs, "outboundRelationship2"):
            inner = _kid(rel, "observation")
            code_el = _kid(inner, "code")
            code, system = _attr(code_el, "code"), _attr(code_el, "codeSystem")
            inner_value = _kid(inner, "value")
            if system == OID_OBSERVATION and code in SERIOUSNESS:
                if (_attr(inner_value, "value") or "").lower() == "true":
                    criteria.add(SERIOUSNESS[code])
            elif system == OID_FDA_REACTION and code == FDA_REQUIRED_INTERVENTION:
                if (_attr(inner_value, "value") or "").lower() == "true":
                    criteria.add("RI")
            elif system == OID_OBSERVATION and code == OBS_OUTCOME:
                outcome_code = _attr(inner_value, "code")
                if outcome_code:
                    outcome = REACTION_OUTCOMES.get(outcome_code, outcome_code)[:32]
                    if outcome_code == "5":
                        criteria.add("DE")
            elif system == OID_OBSERVATION and code == OBS_TRANSLATION:
                translated = _text(inner_value)
        term = _attr(value, "displayName") or translated or _text(_kid(value, "originalText")) or meddra
        if not term:
            raise _Bad("reaction without MedDRA code (E.i.2.1b) or reported term (E.i.1.1a)", "E.i.2.1b",
                       self.line(obs))
        start, _end = self.interval(_kid(obs, "effectiveTime"), "E.i.4", "E.i.5")
        place = _descendant(_kid(obs, "location"), "locatedPlace")
        country = _attr(_kid(place, "code"), "code")
        row = {"pt_verbatim": term, "meddra_code": meddra[:16] if meddra else None, "outcome": outcome}
        return row, criteria, start, country[:64] if country else None

    def characterisations(self, assessment: ET.Element | None) -> dict[str, tuple[str, int | None]]:
        """substanceAdministration id -> (G.k.1 code, line) from the causalityAssessment elements."""
        roles: dict[str, tuple[str, int | None]] = {}
        for component in _kids(assessment, "component"):
            causality = _kid(component, "causalityAssessment")
            if causality is None or not _code_is(causality, OBS_CHARACTERISATION, OID_OBSERVATION):
                continue
            ref = _attr(_kid(causality, "subject2", "productUseReference", "id"), "root")
            code = _attr(_kid(causality, "value"), "code")
            if ref and code:
                roles[ref] = (code, self.line(causality))
        return roles

    def drug(self, administration: ET.Element, roles: dict[str, tuple[str, int | None]],
             seq: int) -> tuple[dict[str, Any], list[str]] | None:
        line = self.line(administration)
        ident = _attr(_kid(administration, "id"), "root")
        got = roles.get(ident or "")
        if got is None:
            raise _Bad(f"drug {seq} has no characterisation of drug role (G.k.1)", "G.k.1", line)
        code, role_line = got
        role = {SUSPECT: "S", CONCOMITANT: "C", INTERACTING: "I"}.get(code)
        if code == NOT_ADMINISTERED:
            return None
        if role is None:
            raise _Bad(f"unknown characterisation of drug role (G.k.1) {code!r}", "G.k.1", role_line)
        product = _kid(administration, "consumable", "instanceOfKind", "kindOfProduct")
        name = _text(_kid(product, "name"))
        substances = [s for s in (_text(_kid(ingredient, "ingredientSubstance", "name"))
                                  for ingredient in _kids(product, "ingredient")) if s]
        active = "\\".join(substances) or None
        if not (name or active):
            raise _Bad(f"drug {seq} has neither a product name (G.k.2.2) nor substances (G.k.2.3.r.1)",
                       "G.k.2.2", line)
        doses: list[str] = []
        routes: list[str] = []
        starts: list[dt.date] = []
        ends: list[dt.date] = []
        for rel in _kids(administration, "outboundRelationship2"):
            dosage = _kid(rel, "substanceAdministration")
            if dosage is None:
                continue
            text = _text(_kid(dosage, "text"))
            quantity = _kid(dosage, "doseQuantity")
            if not text and _attr(quantity, "value"):
                text = " ".join(x for x in (_attr(quantity, "value"), _attr(quantity, "unit")) if x)
            if text:
                doses.append(text)
            route_el = _kid(dosage, "routeCode")
            route = _text(_kid(route_el, "originalText")) or _attr(route_el, "code")
            if route and route not in routes:
                routes.append(route)
            start, end = self.interval(_kid(dosage, "effectiveTime"), "G.k.4.r.4", "G.k.4.r.5")
            starts += [start] if start else []
            ends += [end] if end else []
        indications: list[str] = []
        for rel in _kids(administration, "inboundRelationship"):
            obs = _kid(rel, "observation")
            if obs is None or not _code_is(obs, OBS_INDICATION, OID_OBSERVATION):
                continue
            value = _kid(obs, "value")
            term = _text(_kid(value, "originalText")) or _attr(value, "displayName") or _attr(value, "code")
            if term:
                indications.append(term)
        row = {
            "seq": seq,
            "role": role,
            "drugname": name or active,
            "active_ingredient": active,
            "route": "; ".join(routes)[:100] or None,
            "dose_text": "; ".join(doses) or None,
            "start_date": min(starts) if starts else None,
            "end_date": max(ends) if ends else None,
        }
        return row, indications

    def reporter_country(self, event: ET.Element) -> str | None:
        """C.2.r.3 of the primary source for regulatory purposes (priority 1), else of the first source."""
        found: list[tuple[int, str]] = []
        for rel in _kids(event, "outboundRelationship"):
            related = _kid(rel, "relatedInvestigation")
            if not _code_is(related, "2", OID_REPORT_RELATION):
                continue
            location = _descendant(_descendant(related, "asLocatedEntity"), "location")
            country = _attr(_kid(location, "code"), "code")
            if country:
                priority = _attr(_kid(rel, "priorityNumber"), "value")
                rank = 0 if priority == "1" else 1
                found.append((rank, country[:64]))
        return min(found, key=lambda item: item[0])[1] if found else None


def _initial_or_followup(first_received: dt.date | None, latest: dt.date) -> str | None:
    """E2B(R3) has no initial/follow-up flag: initial when C.1.5 equals C.1.4, follow-up when later."""
    if first_received is None:
        return None
    return "I" if latest <= first_received else "F"


def _quantity(value: ET.Element | None, units: dict[str, float], low: float, high: float,
              exclusive_low: bool = False) -> float | None:
    """A PQ value converted with ``units``; None when absent, not a number, of unknown unit or out of
    range."""
    number, unit = _attr(value, "value"), _attr(value, "unit")
    factor = units.get(unit or "")
    if number is None or factor is None:
        return None
    try:
        converted = float(number.replace(",", ".")) * factor
    except ValueError:
        return None
    if not math.isfinite(converted) or not low <= converted <= high or (exclusive_low and converted == low):
        return None
    return round(converted, 4)


# ------------------------------------------------------------------------------------------- public API
def e2b_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files to read: each path given, and every ``*.xml`` under a folder (sorted)."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() == ".xml"))
        elif path.is_file():
            out.append(path)
        else:
            raise UnreadableFileError("no such file or folder", file=str(path))
    return out


def messages(root: ET.Element) -> list[ET.Element]:
    """The ICSR messages of a document: the root itself or each PORR_IN049016UV of a batch."""
    return list(root.iter("PORR_IN049016UV"))


def parse_e2b_bytes(data: bytes, name: str) -> Batch:
    """Parse the bytes of one E2B(R3) file into a Batch (kind ``e2b``)."""
    root, lines = parse_xml(data, name)
    found = messages(root)
    if not found:
        raise UnreadableFileError(
            f"not an E2B(R3) ICSR file: no PORR_IN049016UV message (root element {_local(root.tag)!r})",
            file=name, line=lines.get(root))
    reader = _Reader(lines)
    versions: list[dict[str, Any]] = []
    drugs: list[dict[str, Any]] = []
    reactions: list[dict[str, Any]] = []
    indications: list[dict[str, Any]] = []
    quarantine: list[dict[str, Any]] = []
    deleted: list[str] = []
    for message in found:
        try:
            icsr = reader.icsr(message)
        except _Bad as bad:
            quarantine.append({"file": name, "line": bad.line if bad.line is not None else lines.get(message),
                               "field": bad.field, "raw": _describe(message), "reason": bad.reason})
            continue
        if icsr.nullified:
            deleted.append(icsr.version["case_key"])
            continue
        versions.append(icsr.version)
        drugs.extend(icsr.drugs)
        reactions.extend(icsr.reactions)
        indications.extend(icsr.indications)
    return Batch(
        kind="e2b",
        name=name,
        sha256=hashlib.sha256(data).hexdigest(),
        versions=_frame(versions, VERSION_COLUMNS),
        drugs=_frame(drugs, DRUG_COLUMNS),
        reactions=_frame(reactions, REACTION_COLUMNS),
        indications=_frame(indications, INDICATION_COLUMNS),
        deleted_case_keys=sorted(set(deleted)),
        quarantine=_frame(quarantine, QUARANTINE_COLUMNS),
        rows_read=len(found),
    )


def parse_e2b(path: str | Path) -> Batch:
    """Parse one E2B(R3) file (a single ICSR or a batch of them)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnreadableFileError(f"cannot read: {exc.strerror or exc}", file=str(path)) from exc
    return parse_e2b_bytes(data, str(path))


def iter_e2b(paths: Iterable[str | Path]) -> Iterator[Batch]:
    """One Batch per file under ``paths`` (files and folders)."""
    for path in e2b_files(paths):
        yield parse_e2b(path)


def _describe(message: ET.Element) -> str:
    """A short raw form of an ICSR for the quarantine: its identifiers."""
    ids = []
    for node in _kids(_descendant(message, "investigationEvent"), "id"):
        if _attr(node, "root") in (OID_REPORT_ID, OID_CASE_ID):
            label = "C.1.1" if node.get("root") == OID_REPORT_ID else "C.1.8.1"
            ids.append(f"{label}={_attr(node, 'extension') or ''}")
    return "; ".join(dict.fromkeys(ids))[:1000] or "PORR_IN049016UV"


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    frame = pd.DataFrame(rows, columns=columns)
    return frame.astype(object).where(frame.notna(), None)
