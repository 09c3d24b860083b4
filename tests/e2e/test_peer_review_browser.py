"""Peer review in the portal (issue 19), in Chromium against a real uvicorn server: the
study director assigns the pathologists, the peer reviewer agrees with one finding and
disagrees with the other, the disagreement is listed and blocks the sign-off, the primary
pathologist revises the finding, both sign off with their password re-entered; the CSV
export then holds the signed findings, and a sponsor without view_findings sees none of them
(nor the review page)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from pydantic import SecretStr

from plexhub.ome_pipeline.synthetic import SyntheticSpec
from plexhub.policies.passwords import hash_password
from plexhub.settings import Settings
from tests.helpers.api import ADMIN
from tests.helpers.httpapi import ingest, ok
from tests.helpers.server import running_server

pytestmark = pytest.mark.e2e
ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}
PASSWORDS = {"pat": "pat-password-0123", "rev": "rev-password-0123"}


@dataclass
class Site:
    base: str
    tokens: dict[str, str]
    image: str
    findings: list[str]
    data: Path


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    settings = Settings(data_dir=tmp_path / "data", admin_token=SecretStr(ADMIN))
    incoming = tmp_path / "data" / "incoming"
    incoming.mkdir(parents=True)
    # pat and rev are local users with passwords: they sign with them
    settings.hub_users_path.parent.mkdir(parents=True, exist_ok=True)
    settings.hub_users_path.write_text(json.dumps({"version": 1, "users": {
        name: {"role": "scientist", "orgs": [], "password": hash_password(pw)}
        for name, pw in PASSWORDS.items()}}))
    with running_server(settings) as base:
        api = f"{base}/api/v1"
        tokens = {user: ok(httpx.post(f"{api}/tokens", headers=ADMIN_H, json={
            "user": user, "role": role, "groups": groups}))["token"]
            for user, role, groups in (("dir", "scientist", []), ("pat", "scientist", []),
                                       ("rev", "scientist", []), ("vic", "sponsor", ["acme"]),
                                       ("rae", "sponsor", ["initech"]))}
        # dir creates the study: its study director
        ok(httpx.post(f"{api}/studies", headers={"Authorization": f"Bearer {tokens['dir']}"},
                      json={"code": "TP1", "title": "Tox path", "sponsor": "acme"}))
        image = ingest(api, ADMIN, incoming, "TP1", "tp1.ome.tif",
                       SyntheticSpec(size_y=512, size_x=512, channels=2, tile=256, seed=2),
                       {"animal_id": "A-11", "tissue": "liver", "dose_group": "high"})
        for group, caps in (("acme", ["view"]), ("initech", ["view", "view_findings"])):
            ok(httpx.post(f"{api}/studies/TP1/grants", headers=ADMIN_H,
                          json={"principal": f"group:{group}", "capabilities": caps}))
        pat = {"Authorization": f"Bearer {tokens['pat']}"}
        findings = [ok(httpx.post(f"{api}/images/{image}/findings", headers=pat, json={
            "tissue": "liver", "term": term, "severity": grade}))["id"]
            for term, grade in (("necrosis, hepatocellular", 2),
                                ("hypertrophy, hepatocellular", 3))]
        ok(httpx.post(f"{api}/images/{image}/annotations", headers=pat, json={
            "type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {
                "type": "Polygon", "coordinates": [[[40, 40], [200, 40], [120, 180], [40, 40]]]},
                "properties": {"class": "necrosis", "note": "centrilobular band"}}]}))
        yield Site(base, tokens, image, findings, tmp_path / "data")


def logged_in(browser: Browser, site: Site, user: str) -> Page:
    """A new browser context logged in to the portal as ``user``, on the studies page."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{site.base}/portal/login")
    page.fill("#token", site.tokens[user])
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.base}/portal/")
    return page


def open_as(browser: Browser, site: Site, user: str) -> Page:
    page = logged_in(browser, site, user)
    page.goto(f"{site.base}/portal/studies/TP1")
    page.get_by_role("link", name="Peer review of findings").click()
    page.wait_for_url("**/portal/studies/TP1/review")
    expect(page.locator("#review-loading")).to_be_hidden()
    return page


def open_slide_as(browser: Browser, site: Site, user: str) -> Page:
    """A sponsor's portal session on the slide page."""
    page = logged_in(browser, site, user)
    page.goto(f"{site.base}/portal/images/{site.image}")
    return page


def slide_state(page: Page) -> str:
    return str(page.locator(".slide .state").get_attribute("data-state"))


def test_a_retired_slide_stays_in_the_review_marked_retired(browser: Browser,
                                                           site: Site) -> None:
    """Issue 14: a retired slide keeps its findings in the review, but is not opened in
    the viewer (which no longer shows it) nor read."""
    ok(httpx.put(f"{site.base}/api/v1/studies/TP1/review",
                 headers={"Authorization": f"Bearer {site.tokens['dir']}"},
                 json={"primary": "pat", "peer": "rev"}))
    ok(httpx.post(f"{site.base}/api/v1/images/{site.image}/retire", headers=ADMIN_H,
                  json={"reason": "re-scanned"}))
    primary = open_as(browser, site, "pat")
    box = primary.locator(f".slide[data-image='{site.image}']")
    expect(box).to_have_attribute("data-retired", "true")
    expect(box.locator(".retired")).to_have_text("retired")
    expect(box.get_by_role("link", name="open in the viewer")).to_have_count(0)
    expect(primary.get_by_role("button", name="Complete my read of this slide")).to_have_count(0)
    expect(primary.locator(f"tr[data-finding='{site.findings[0]}']")).to_be_visible()


def test_a_peer_reviewer_disagrees_it_is_resolved_and_both_sign(
        browser: Browser, site: Site) -> None:
    vocab = ok(httpx.get(f"{site.base}/api/v1/findings/vocabulary", headers=ADMIN_H))
    assert "hypertrophy, hepatocellular" in vocab["organs"]["liver"]
    # the study director assigns the pathologists
    director = open_as(browser, site, "dir")
    form = director.get_by_role("form", name="Assign pathologists")
    form.get_by_label("Primary pathologist").fill("pat")
    form.get_by_label("Peer reviewer").fill("rev")
    form.get_by_role("button", name="Assign").click()
    expect(director.locator("#pr-status")).to_have_text("Pathologists assigned")
    expect(director.locator("#peer")).to_have_text("rev")
    director.screenshot(path=str(site.data / "peer-review-assigned.png"), full_page=True)

    primary = open_as(browser, site, "pat")
    expect(primary.locator("#my-role")).to_have_text("primary pathologist")
    expect(primary.get_by_role("form", name="Assign pathologists")).to_have_count(0)
    primary.get_by_role("button", name="Complete my read of this slide").click()
    expect(primary.locator(".slide .state")).to_have_text("primary done")

    peer = open_as(browser, site, "rev")
    expect(peer.locator("#my-role")).to_have_text("peer reviewer")
    agree = peer.get_by_role("group", name="Verdict on liver: necrosis")
    agree.get_by_role("button", name="Agree", exact=True).click()
    expect(peer.locator(f"tr[data-finding='{site.findings[0]}'] .verdict-agree")).to_be_visible()
    disagree = peer.get_by_role("group", name="Verdict on liver: hypertrophy")
    disagree.get_by_role("textbox").fill("minimal at most")
    disagree.get_by_role("button", name="Disagree", exact=True).click()
    listed = peer.get_by_role("list", name="Open disagreements").get_by_role("listitem")
    expect(listed).to_have_count(1)
    expect(listed).to_contain_text("hypertrophy, hepatocellular")
    expect(listed).to_contain_text("minimal at most")
    peer.get_by_role("button", name="Complete peer review of this slide").click()
    expect(peer.locator(".slide .state")).to_have_text("peer reviewed")
    # no sign-off while the disagreement is open
    peer.get_by_label("Password (your electronic signature)").fill(PASSWORDS["rev"])
    peer.get_by_role("button", name="Sign off").click()
    expect(peer.locator("#pr-status")).to_contain_text("disagreement(s) are open")
    peer.screenshot(path=str(site.data / "peer-review-disagreement.png"), full_page=True)

    # the primary revises the finding: the disagreement is resolved
    primary.reload()
    item = primary.get_by_role("list", name="Open disagreements").get_by_role("listitem")
    expect(item).to_have_count(1)
    item.get_by_role("combobox").select_option("1")
    item.get_by_role("button", name="Revise finding").click()
    expect(primary.locator("#no-disagreements")).to_be_visible()
    expect(primary.locator(f"tr[data-finding='{site.findings[1]}']")).to_contain_text(
        "revised since")
    # a wrong password is refused; the right one signs
    primary.get_by_label("Password (your electronic signature)").fill("not-my-password")
    primary.get_by_role("button", name="Sign off").click()
    expect(primary.locator("#pr-status")).to_contain_text("refused")
    primary.get_by_label("Password (your electronic signature)").fill(PASSWORDS["pat"])
    primary.get_by_role("button", name="Sign off").click()
    expect(primary.locator("#signoffs li[data-role=primary]")).to_contain_text(
        "pat signed as primary pathologist (approved")
    expect(primary.locator("#signoff-form")).to_be_hidden()

    peer.reload()
    expect(peer.locator("#no-disagreements")).to_be_visible()
    peer.get_by_label("Password (your electronic signature)").fill(PASSWORDS["rev"])
    peer.get_by_role("button", name="Sign off").click()
    expect(peer.locator("#signoffs li[data-role=peer]")).to_contain_text(
        "rev signed as peer reviewer (reviewed")
    expect(peer.locator("#lock-state")).to_contain_text("signed off and locked")
    assert slide_state(peer) == "signed_off"
    expect(peer.get_by_role("button", name="Agree", exact=True)).to_have_count(0)
    peer.screenshot(path=str(site.data / "peer-review-signed.png"), full_page=True)

    # the CSV export holds the signed findings
    api = f"{site.base}/api/v1"
    text = httpx.get(f"{api}/studies/TP1/findings.csv", headers=ADMIN_H).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sorted((r["MISTRESC"], r["MISEV"]) for r in rows) == [
        ("HYPERTROPHY, HEPATOCELLULAR", "MINIMAL"), ("NECROSIS, HEPATOCELLULAR", "MILD")]
    assert {(r["MIEVAL"], r["MIPEER"], r["MIRVSTAT"], r["MISTAT"]) for r in rows} == {
        ("pat", "rev", "signed_off", "signed")}
    assert all("pat (approved" in r["MISIGN"] and "rev (reviewed" in r["MISIGN"]
               for r in rows)
    # sponsors: view_findings gets the signed rows, view alone none; neither the review page
    for user, count in (("rae", 2), ("vic", 0)):
        h = {"Authorization": f"Bearer {site.tokens[user]}"}
        r = httpx.get(f"{api}/studies/TP1/findings.csv", headers=h)
        assert len(list(csv.DictReader(io.StringIO(r.text)))) == count, user
        assert len(ok(httpx.get(f"{api}/images/{site.image}/findings", headers=h))) == count
    sponsor = browser.new_context().new_page()
    sponsor.goto(f"{site.base}/portal/login")
    sponsor.fill("#token", site.tokens["vic"])
    sponsor.click("button[type=submit]")
    sponsor.wait_for_url(f"{site.base}/portal/")
    sponsor.goto(f"{site.base}/portal/studies/TP1")
    expect(sponsor.get_by_role("link", name="Peer review of findings")).to_have_count(0)
    answer = sponsor.goto(f"{site.base}/portal/studies/TP1/review")
    assert answer is not None
    assert answer.status == 404
    # the slide page: view alone shows no review; view_findings the signed-off one, read-only
    sponsor.goto(f"{site.base}/portal/images/{site.image}")
    expect(sponsor.get_by_role("region", name="Pathology review (signed off)")).to_have_count(0)
    reader = open_slide_as(browser, site, "rae")
    review = reader.get_by_role("region", name="Pathology review (signed off)")
    expect(review).to_be_visible()
    findings = review.get_by_role("table", name="Findings")
    expect(findings.get_by_role("row")).to_have_count(3)  # the head and two findings
    expect(findings).to_contain_text("necrosis, hepatocellular")
    expect(findings).to_contain_text("1 (minimal)")
    annotations = review.get_by_role("table", name="Annotations")
    expect(annotations.get_by_role("row")).to_have_count(2)
    expect(annotations).to_contain_text("centrilobular band")
    expect(reader.get_by_role("button", name="Record finding")).to_have_count(0)
    review.scroll_into_view_if_needed()
    reader.screenshot(path=str(site.data / "sponsor-signed-review.png"), full_page=True)
