"""A stateful model test of the Partner API's CRUD surface.

Example tests check one request at a time; the bugs a store like this hides live in
sequences: a rename that leaves a stale join, a cascade that misses a child, a count that
drifts from its rows, a uniqueness rule that forgets the row being updated. Hypothesis
drives random create / patch / put / delete runs over monitoring stations, sites, contacts
and (bulk) devices through real HTTP, predicts every outcome from a plain-dict model of
what should exist, and after each step checks the lists, totals and single GETs against it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import hypothesis.strategies as st
from helpers import Settings
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from one_hop import TestClient

from sandbox import create_app

DEALER = 1001
BASE = f"/partner/v1/dealers/{DEALER}"
STATIONS, SITES = f"{BASE}/monitoring-stations", f"{BASE}/sites"
STATION_EXT = "external_monitoring_station_id"
# Invalid values; each is invalid wherever it is sent, so a 422 names the field it is in.
BAD_TZ, BAD_ACCOUNT, BAD_PREFIX = "Mars/Olympus", "no spaces!", "TOO-LONG-PREFIX"
BAD_EMAIL, BAD_ZONE, BAD_TYPE = "not-an-email", "12", "drone"
BAD = {BAD_TZ, BAD_ACCOUNT, BAD_PREFIX, BAD_EMAIL, BAD_ZONE, BAD_TYPE}
UNKNOWN_STATION = st.sampled_from((2003, 999_999))  # dealer 1002's seeded station; none
CODES = {404: "not_found", 409: "conflict", 422: "validation_failed"}
FRESH = st.uuids().map(lambda u: u.hex[:6])
NAMES = st.sampled_from(("North", "South", "Depot"))
DEVICE_ORDER = ("external_device_id", "device_type", "zone_number", "name")
DEVICE_EMPTY = dict.fromkeys(
    ("additional_zone_numbers", "name", "mac", "manufacturer", "model", "serial_number")
)
METHODS = st.sampled_from(("POST", "PATCH", "PUT"))

Problem = tuple[Any, ...] | None  # (status, error field[, text the message must contain])
Model = dict[int, dict[str, Any]]


def _mostly(good: Sequence[Any] | st.SearchStrategy[Any], *bad: Any) -> st.SearchStrategy[Any]:
    """A good value three times in four."""
    valid = good if isinstance(good, st.SearchStrategy) else st.sampled_from(good)
    return st.one_of(valid, valid, valid, st.sampled_from(bad))


def _or(pool: set[str]) -> st.SearchStrategy[str]:
    """Mostly a fresh external id, else a taken one to provoke a clash."""
    return _mostly(FRESH, *sorted(pool)) if pool else FRESH


def _under(site: int, kind: str) -> str:
    return f"{SITES}/{site}/{kind}"


def _invalid(body: dict[str, Any], order: Sequence[str] = ()) -> Problem:
    """The 422 validation reports: the first broken field in declaration order."""
    broken = (n for n in order or body if isinstance(body.get(n), str) and body[n] in BAD)
    return next(((422, n) for n in broken), None)


def _numbered(site: dict[str, Any]) -> bool:
    return bool(site["monitoring_station_id"] and site["account_number"])


def _clash(model: Model, column: str, value: Any, target: int | None, text: str) -> Problem:
    taken = any(o[column] == value for i, o in model.items() if i != target)
    return (409, None, text) if value is not None and taken else None


class PartnerApiMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.app = create_app(Settings())
        self.client = TestClient(self.app)
        self.client.__enter__()
        key = self.client.get("/_sandbox/credentials").json()["api_keys"][0]
        assert key["dealer_id"] == DEALER
        self.client.headers["Authorization"] = f"Bearer {key['key']}"
        self.stations = self._load(STATIONS, "monitoring_station_id")
        self.sites = self._load(SITES, "site_id")
        self.contacts = {s: self._load(_under(s, "contacts"), "contact_id") for s in self.sites}
        self.devices = {s: self._load(_under(s, "devices"), "device_id") for s in self.sites}
        self.touched: set[str] = set()  # objects the last rule wrote: re-read them
        self.gone: set[str] = set()  # paths the last rule deleted: they must answer 404
        self.steps = 0

    def teardown(self) -> None:
        self.client.__exit__(None, None, None)

    # ---- plumbing -------------------------------------------------------------------------

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.client.request(method, path, **kwargs)
        assert response.status_code < 500, f"{method} {path}: {response.text}"
        return response

    def expect(self, response: Any, status: int, problem: Problem = None) -> Any:
        where = f"{response.request.method} {response.request.url}: {response.text}"
        assert response.status_code == (problem[0] if problem else status), where
        if problem:
            _check_error(response.json()["error"], problem)
        return response.json() if response.content else None

    def _load(self, path: str, id_column: str) -> Model:
        items = self.expect(self.call("GET", path, params={"limit": 1000}), 200)
        return {item[id_column]: item for item in items}

    def _pick(self, data: st.DataObject, model: Model) -> int:
        return data.draw(st.sampled_from(sorted(model)))

    def _write(
        self, data: st.DataObject, method: str, where: tuple[str, Model, str],
        fields: dict[str, st.SearchStrategy[Any]], required: int,
        bad: dict[str, st.SearchStrategy[Any]],
        rules: Callable[[dict[str, Any], int | None], Problem] | None = None, **fresh: Any,
    ) -> int | None:  # fmt: skip
        """POST / PATCH / PUT one object, breaking at most one field (``bad``). ``fields``
        are in declaration order, the external id first, the first ``required`` required;
        ``fresh`` holds a new object's defaults (PUT clears those that are None); ``rules``
        predicts what field validation cannot."""
        collection, model, id_column = where
        target = None if method == "POST" or not model else self._pick(data, model)
        method = "POST" if target is None else method
        chosen = data.draw(st.sets(st.sampled_from(list(fields))))
        keep = [
            n for i, n in enumerate(fields) if n in chosen or (i < required and method != "PATCH")
        ]
        body = {n: data.draw(fields[n], label=n) for n in keep}
        broken = data.draw(st.sampled_from((None, None, None, *bad)))
        if broken is not None:
            body[broken] = data.draw(bad[broken], label=broken)
        after = dict(fresh) if target is None else dict(model[target])
        if method == "PUT":
            after.update({name: None for name, value in fresh.items() if value is None})
        after.update(body)
        ext = next(iter(fields))
        problem = _invalid(body) or (rules(after, target) if rules else None)
        problem = problem or _clash(model, ext, body.get(ext), target, "already exists")
        path = collection if target is None else f"{collection}/{target}"
        item = self.expect(
            self.call(method, path, json=body), 201 if target is None else 200, problem
        )
        if problem:
            return None
        model[item[id_column]] = after | {id_column: item[id_column]}
        assert {k: item[k] for k in after} == after, (method, path, body)
        self.touched.add(f"{collection}/{item[id_column]}")
        return int(item[id_column])

    def _delete(self, path: str) -> None:
        self.expect(self.call("DELETE", path), 204)
        self.expect(self.call("DELETE", path), 404, (404, None))
        self.gone.add(path)

    def _relink(self) -> None:
        """Sites follow their station's external id, and lose a deleted station."""
        for site_id, site in self.sites.items():
            station = self.stations.get(site["monitoring_station_id"])
            if station is None and site["monitoring_station_id"] is not None:
                site["monitoring_station_id"] = None
                self.touched.add(f"{SITES}/{site_id}")
            site[STATION_EXT] = station and station[STATION_EXT]

    def _site_rules(self, after: dict[str, Any], target: int | None) -> Problem:
        """The station must be the dealer's; an account number is unique at its station."""
        station = after["monitoring_station_id"]
        after[STATION_EXT] = self.stations.get(station, {}).get(STATION_EXT)
        if station is None:
            return None
        if station not in self.stations:
            return (404, "monitoring_station_id")  # named in the body, not found
        same = {i: s for i, s in self.sites.items() if s["monitoring_station_id"] == station}
        return _clash(same, "account_number", after["account_number"], target, "account number")

    # ---- monitoring stations and sites ------------------------------------------------

    @rule(data=st.data(), method=METHODS)
    def write_station(self, data: st.DataObject, method: str) -> None:
        fields = {
            STATION_EXT: _or({s[STATION_EXT] for s in self.stations.values()}),
            "name": NAMES,
            "prefix": st.just("CH"),
            "linecard": st.sampled_from(("1", "7")),
        }
        where = (STATIONS, self.stations, "monitoring_station_id")
        bad = {"prefix": st.just(BAD_PREFIX)}
        self._write(
            data, method, where, fields, 2, bad, dealer_id=DEALER, prefix=None, linecard=None
        )
        self._relink()

    @precondition(lambda self: self.stations)
    @rule(data=st.data())
    def delete_station(self, data: st.DataObject) -> None:
        target = self._pick(data, self.stations)
        self._delete(f"{STATIONS}/{target}")
        del self.stations[target]
        self._relink()

    @rule(data=st.data(), method=METHODS)
    def write_site(self, data: st.DataObject, method: str) -> None:
        accounts = {s["account_number"] for s in self.sites.values()} - {None}
        fields = {
            "external_site_id": _or({s["external_site_id"] for s in self.sites.values()}),
            "name": NAMES,
            "timezone": st.sampled_from(("America/New_York", "Asia/Seoul")),
            "monitoring_station_id": st.sampled_from((None, *self.stations)),
            "account_number": st.sampled_from((None, "A-1", *sorted(accounts))),
            "address1": st.none() | NAMES,
            "address2": st.none() | NAMES,
            "is_activated": st.sampled_from((0, 1)),
        }
        bad = {
            "timezone": st.just(BAD_TZ),
            "monitoring_station_id": UNKNOWN_STATION,
            "account_number": st.just(BAD_ACCOUNT),
        }
        empty = dict.fromkeys(("monitoring_station_id", "account_number", "address1", "address2"))
        fresh = {"dealer_id": DEALER, "is_activated": 0, **empty}
        where = (SITES, self.sites, "site_id")
        site = self._write(data, method, where, fields, 3, bad, self._site_rules, **fresh)
        if site is not None and site not in self.contacts:
            self.contacts[site], self.devices[site] = {}, {}

    @precondition(lambda self: any(map(_numbered, self.sites.values())))
    @rule(data=st.data())
    def reuse_account_number(self, data: st.DataObject) -> None:
        """Two sites sharing an account number at one station would cross alarm signals."""
        owners = sorted(i for i, s in self.sites.items() if _numbered(s))
        owner = self.sites[data.draw(st.sampled_from(owners))]
        body = {k: owner[k] for k in ("monitoring_station_id", "account_number")}
        others = sorted(set(self.sites) - {owner["site_id"]})
        if others and data.draw(st.booleans()):
            path = f"{SITES}/{data.draw(st.sampled_from(others))}"
            response = self.call("PATCH", path, json=body)
        else:
            new = {"external_site_id": "x-" + data.draw(FRESH), "name": "Twin", "timezone": "UTC"}
            response = self.call("POST", SITES, json=new | body)
        self.expect(response, 409, (409, None, "account number"))

    @precondition(lambda self: self.sites)
    @rule(data=st.data())
    def delete_site(self, data: st.DataObject) -> None:
        site = self._pick(data, self.sites)
        self._delete(f"{SITES}/{site}")
        del self.sites[site]
        for kind, model in (("contacts", self.contacts), ("devices", self.devices)):
            self.gone |= {f"{_under(site, kind)}/{i}" for i in model.pop(site)}
            self.gone.add(_under(site, kind))  # the cascade took the children

    # ---- contacts ---------------------------------------------------------------------

    @precondition(lambda self: self.sites)
    @rule(data=st.data(), method=METHODS)
    def write_contact(self, data: st.DataObject, method: str) -> None:
        site = self._pick(data, self.sites)
        model = self.contacts[site]
        fields = {
            "external_contact_id": _or({c["external_contact_id"] for c in model.values()}),
            "first_name": NAMES,
            "last_name": NAMES,
            "phone_number": st.just("+15551234567"),
            "email": st.just("ops@example.com"),
        }
        where, bad = (_under(site, "contacts"), model, "contact_id"), {"email": st.just(BAD_EMAIL)}
        self._write(
            data, method, where, fields, 3, bad, site_id=site, phone_number=None, email=None
        )

    @precondition(lambda self: any(self.contacts.values()))
    @rule(data=st.data())
    def delete_contact(self, data: st.DataObject) -> None:
        site = data.draw(st.sampled_from(sorted(s for s, c in self.contacts.items() if c)))
        contact = self._pick(data, self.contacts[site])
        self._delete(f"{_under(site, 'contacts')}/{contact}")
        del self.contacts[site][contact]

    # ---- devices, in bulk: every item succeeds or fails on its own --------------------

    @precondition(lambda self: self.sites)
    @rule(data=st.data(), method=st.sampled_from(("POST", "PATCH", "DELETE")))
    def bulk_devices(self, data: st.DataObject, method: str) -> None:
        site = self._pick(data, self.sites)
        model, path = self.devices[site], _under(site, "devices")
        ids = {d["external_device_id"]: i for i, d in model.items()}
        fields = {
            "external_device_id": _or(set(ids)),
            "device_type": _mostly(("camera", "bridge"), BAD_TYPE),
            "zone_number": _mostly(("001", "002"), BAD_ZONE),
            "name": NAMES,
        }
        names = list(fields)[: 3 if method == "POST" else 1]
        optional = {n: fields[n] for n in fields if n not in names and method != "DELETE"}
        shape = st.fixed_dictionaries({n: fields[n] for n in names}, optional=optional)
        items = data.draw(st.lists(shape, min_size=1, max_size=4))
        expected: list[Problem] = []
        left = dict(ids)
        for item in items:
            ext, known = item["external_device_id"], item["external_device_id"] in left
            if method == "POST":  # an id taken earlier in the same batch clashes too
                expected.append(_invalid(item, DEVICE_ORDER) or ((409, None) if known else None))
                if expected[-1] is None:
                    left[ext] = 0
            elif method == "PATCH":  # the device is looked up before the changes are checked
                expected.append(_invalid(item, DEVICE_ORDER) if known else (404, None))
            else:  # a repeated id is found once, then is gone
                expected.append(None if left.pop(ext, None) is not None else (404, None))
        if method == "DELETE":
            exts = ",".join(i["external_device_id"] for i in items)
            response = self.call(method, path, params={"external_device_ids": exts})
        else:
            response = self.call(method, path, json=items)
        body = self.expect(response, 201 if method == "POST" else 200)
        failures = sum(problem is not None for problem in expected)
        assert (body["success_count"], body["failure_count"]) == (len(items) - failures, failures)
        for item, result, problem in zip(items, body["results"], expected, strict=True):
            assert result["is_successful"] is (problem is None), result
            assert result["external_device_id"] == item["external_device_id"], result
            if problem:
                _check_error(result["error"], problem)
                continue
            device_id = result["device_id"]
            assert method == "POST" or device_id == ids[item["external_device_id"]], result
            if method == "DELETE":
                del model[device_id]
                self.gone.add(f"{path}/{device_id}")
            else:
                model.setdefault(
                    device_id, {**DEVICE_EMPTY, "device_id": device_id, "site_id": site}
                )
                model[device_id].update(item)
                self.touched.add(f"{path}/{device_id}")

    # ---- the check after every step ---------------------------------------------------

    @invariant()
    def api_matches_model(self) -> None:
        listed: dict[str, dict[str, Any]] = {}
        lists = [(STATIONS, self.stations, "monitoring_station_id"), (SITES, self.sites, "site_id")]
        for site in self.sites:
            lists.append((_under(site, "contacts"), self.contacts[site], "contact_id"))
            lists.append((_under(site, "devices"), self.devices[site], "device_id"))
        for path, model, id_column in lists:
            response = self.call("GET", path, params={"limit": 1000})
            items = self.expect(response, 200)
            assert response.headers["X-Total-Count"] == str(len(model)), path
            assert [item[id_column] for item in items] == sorted(model), path
            for item in items:
                expected = model[item[id_column]]
                assert {k: item[k] for k in expected} == expected, path
                listed[f"{path}/{item[id_column]}"] = item
        self.steps += 1
        rotating = {sorted(listed)[self.steps % len(listed)]} if listed else set()
        for path in (self.touched - self.gone) | rotating:  # a single GET shows the list entry
            assert self.expect(self.call("GET", path), 200) == listed[path], path
        for path in self.gone:
            self.expect(self.call("GET", path), 404, (404, None))
        self.touched.clear()
        self.gone.clear()
        assert self.app.state.server_errors == []


def _check_error(error: dict[str, Any], problem: tuple[Any, ...]) -> None:
    assert (error["code"], error.get("field")) == (CODES[problem[0]], problem[1]), error
    assert len(problem) < 3 or problem[2] in error["message"], error


PartnerApiMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("CHEKT_SANDBOX_FUZZ_EXAMPLES", "15")),  # make fuzz: more
    stateful_step_count=25,
    deadline=None,
)
TestPartnerApiStateful = PartnerApiMachine.TestCase
