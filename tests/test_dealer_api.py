"""The dealer API ``/ext/v1`` (CONTRACT §5.2): a dealer API key, bare arrays, and errors that
carry ``detail``."""

from __future__ import annotations

from helpers import OTHER_DEALER_KEY, Api


def test_sites_are_a_bare_array_of_the_keys_dealer(api: Api) -> None:
    answer = api.client.get("/ext/v1/sites?limit=500", headers=api.bearer(api.key))
    assert answer.status_code == 200, answer.text
    sites = answer.json()
    assert isinstance(sites, list) and sites
    apps_key = next(k["key"] for k in api.creds["api_keys"] if k["name"] == "apps")
    same_dealer = api.client.get("/v1/sites", headers=api.bearer(apps_key)).json()
    assert [s["site_id"] for s in sites] == [s["site_id"] for s in same_dealer]
    assert len({s["dealer_name"] for s in sites}) == 1
    for site in sites:
        assert isinstance(site["partitions"], list)
        assert site["is_partition_enabled"] == (len(site["partitions"]) > 1)
    other = api.client.get("/ext/v1/sites", headers=api.bearer(OTHER_DEALER_KEY)).json()
    assert other and not {s["site_id"] for s in sites} & {s["site_id"] for s in other}


def test_paging_search_and_errors(api: Api) -> None:
    key = api.bearer(api.key)
    every = api.client.get("/ext/v1/sites", headers=key).json()
    first = api.client.get("/ext/v1/sites?per_page=2&page=1", headers=key).json()
    second = api.client.get("/ext/v1/sites?per_page=2&page=2", headers=key).json()
    assert first + second == every[:4]
    name = every[0]["site_name"]
    found = api.client.get("/ext/v1/sites", params={"search": name.upper()}, headers=key).json()
    assert every[0] in found
    bad = api.client.get("/ext/v1/sites?per_page=101", headers=key)
    assert bad.status_code == 422
    assert bad.json()["error"]["detail"] == "per_page"
    assert set(bad.json()["error"]) >= {"message", "code", "detail"}
    refused = api.client.get("/ext/v1/sites", headers=api.bearer(api.token()))
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"
    assert refused.json()["error"]["detail"] is None
