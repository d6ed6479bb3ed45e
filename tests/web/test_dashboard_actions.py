"""The dashboard's actions in a real browser against the real `ovbench serve` (the package's
server and Chromium, tests/web/conftest.py): cancel, delete and rerun a job from its page,
cancel and delete a sweep from its page. Cancel and delete ask first (window.confirm); the
buttons follow the live state; an API error shows as its message.

Named to run after test_dashboard.py: the jobs made here do not change what it sees.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.sync_api import Dialog, Page, Request, expect

from tests.e2e.conftest import (
    FINISHED,
    Server,
    create_sweep,
    read_sweep,
    uploaded_model_id,
    wait_for,
)

NITER = 50  # a job of the tiny model in well under a second
LONG_S = 30  # surely still running when the button is clicked; cancelled long before its end
END_TIMEOUT_MS = 20_000  # a running job stops within 2 s of its cancel


def _accept_dialogs(page: Page) -> list[str]:
    """Accept every confirm() from now on; the messages asked, in order."""
    asked: list[str] = []

    def accept(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    return asked


def _posts(page: Page, suffix: str) -> list[str]:
    """The URLs of the POSTs the page sends that end with `suffix`, as they go."""
    sent: list[str] = []
    page.on(
        "request",
        lambda req: sent.append(req.url) if _is_post_to(req, suffix) else None,
    )
    return sent


def _is_post_to(request: Request, suffix: str) -> bool:
    return request.method == "POST" and request.url.endswith(suffix)


def _finished_job(server: Server, model_id: str) -> str:
    job = server.submit(model_id=model_id, niter=NITER)
    done = server.wait_job(job["id"], timeout_s=60)
    assert done["status"] == "succeeded", done
    return str(done["id"])


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def test_cancel_a_running_job_from_its_page(
    server: Server, page: Page, files: dict[str, Path], tmp_path: Path
) -> None:
    model_id = uploaded_model_id(server, files["xml"])
    job_id = server.submit(model_id=model_id, duration_s=LONG_S)["id"]
    server.wait_running(job_id)
    cancels = _posts(page, f"/jobs/{job_id}/cancel")
    page.goto(f"{server.url}/#/job/{job_id}")
    cancel = page.locator("#job-cancel")
    expect(cancel).to_be_visible()
    expect(page.locator("#job-delete")).to_have_count(0)  # not while it runs
    expect(page.locator("#job-rerun")).to_be_visible()
    page.screenshot(path=str(tmp_path / "job-running.png"))
    print(f"screenshot: {tmp_path / 'job-running.png'}")

    # Declined: nothing is sent, the job runs on.
    declined: list[str] = []
    page.once("dialog", lambda dialog: (declined.append(dialog.message), dialog.dismiss()))
    cancel.click()
    assert declined and job_id[:8] in declined[0], declined
    assert server.job(job_id)["status"] == "running"

    asked = _accept_dialogs(page)
    cancel.click()
    # The answer of a running job is still "running": cancelled comes by the live updates.
    expect(page.locator("#job-head .status")).to_have_text("cancelled", timeout=END_TIMEOUT_MS)
    expect(page.locator("#job-cancel")).to_have_count(0)
    expect(page.locator("#job-delete")).to_be_visible()
    expect(page.locator("#job-error")).to_be_empty()
    assert len(asked) == 1 and job_id[:8] in asked[0], asked
    assert cancels == [f"{server.url}/jobs/{job_id}/cancel"], cancels
    assert server.job(job_id)["status"] == "cancelled"


def test_delete_a_finished_job_from_its_page(
    server: Server, page: Page, files: dict[str, Path]
) -> None:
    model_id = uploaded_model_id(server, files["xml"])
    kept = _finished_job(server, model_id)
    gone = _finished_job(server, model_id)  # newer: listed above `kept` while it exists
    page.goto(f"{server.url}/#/job/{gone}")
    expect(page.locator("#job-head .status")).to_have_text("succeeded")
    expect(page.locator("#job-cancel")).to_have_count(0)  # nothing to cancel once finished
    asked = _accept_dialogs(page)
    page.click("#job-delete")

    expect(page).to_have_url(re.compile(r"#/jobs$"))
    expect(page.locator(f'#jobs tr[data-job="{kept}"]')).to_be_visible()  # the list is drawn
    expect(page.locator(f'#jobs tr[data-job="{gone}"]')).to_have_count(0)
    assert len(asked) == 1 and gone[:8] in asked[0], asked
    assert _error(server.client.get(f"/jobs/{gone}"), 404)["code"] == "job_not_found"
    assert server.client.get(f"/jobs/{kept}").status_code == 200


def test_rerun_a_job_from_its_page_opens_the_new_job(
    server: Server, page: Page, files: dict[str, Path]
) -> None:
    model_id = uploaded_model_id(server, files["xml"])
    original = _finished_job(server, model_id)
    asked = _accept_dialogs(page)
    page.goto(f"{server.url}/#/job/{original}")
    expect(page.locator("#job-head .status")).to_have_text("succeeded")
    page.click("#job-rerun")

    expect(page).to_have_url(re.compile(r"#/job/[0-9a-f]+$"))
    expect(page).not_to_have_url(re.compile(f"#/job/{original}$"))
    rerun_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("h1 .mono")).to_have_text(rerun_id)
    expect(page.locator("#rerun-of")).to_have_attribute("href", f"#/job/{original}")
    rerun = server.wait_job(rerun_id, timeout_s=60)
    assert rerun["rerun_of"] == original and rerun["status"] == "succeeded", rerun
    assert rerun["resolved_params"]["niter"] == NITER
    # It finished while shown: the page says so and offers Delete, no Cancel.
    expect(page.locator("#job-head .status")).to_have_text("succeeded")
    expect(page.locator("#job-delete")).to_be_visible()
    expect(page.locator("#job-cancel")).to_have_count(0)
    assert asked == []  # a rerun asks nothing


def test_a_sweep_point_is_deleted_with_its_sweep_from_the_sweep_page(
    server: Server, page: Page, files: dict[str, Path], tmp_path: Path
) -> None:
    model_id = uploaded_model_id(server, files["xml"])
    sweep_id = create_sweep(
        server, device="CPU", model_id=model_id, niter=NITER, grid={"nireq": [1, 2]}
    )["id"]
    done = wait_for(
        lambda: (s := read_sweep(server, sweep_id))["status"] in FINISHED and s,
        60,
        f"sweep {sweep_id} to finish",
    )
    point_job = done["points"][0]["job_id"]
    asked = _accept_dialogs(page)
    page.goto(f"{server.url}/#/job/{point_job}")
    page.click("#job-delete")

    # 409 job_in_sweep: its message in the error area, not the body; the job stays.
    notice = page.locator("#job-error .notice")
    expect(notice).to_have_attribute("data-code", "job_in_sweep")
    error = _error(server.client.delete(f"/jobs/{point_job}"), 409)
    expect(notice).to_contain_text(error["message"])
    assert "{" not in notice.inner_text() and "details" not in notice.inner_text()
    assert page.url.endswith(f"#/job/{point_job}")
    assert server.client.get(f"/jobs/{point_job}").status_code == 200
    page.screenshot(path=str(tmp_path / "job-in-sweep.png"))
    print(f"screenshot: {tmp_path / 'job-in-sweep.png'}")

    notice.get_by_role("link", name="Open the sweep").click()
    expect(page.locator("#sweep-status .status")).to_have_text(done["status"])
    expect(page.locator("#sweep-cancel")).to_have_count(0)
    page.screenshot(path=str(tmp_path / "sweep-finished.png"))
    print(f"screenshot: {tmp_path / 'sweep-finished.png'}")
    page.click("#sweep-delete")
    expect(page).to_have_url(re.compile(r"#/sweeps$"))
    expect(page.locator("#sweeps")).to_be_visible()
    expect(page.locator(f'#sweeps a[href="#/sweep/{sweep_id}"]')).to_have_count(0)
    assert len(asked) == 2 and sweep_id[:8] in asked[1], asked
    assert _error(server.client.get(f"/sweeps/{sweep_id}"), 404)["code"] == "sweep_not_found"
    assert server.client.get(f"/jobs/{point_job}").status_code == 404


def test_cancel_a_running_sweep_from_its_page(
    server: Server, page: Page, files: dict[str, Path]
) -> None:
    model_id = uploaded_model_id(server, files["xml"])
    sweep = create_sweep(
        server, device="CPU", model_id=model_id, duration_s=LONG_S, grid={"nireq": [1, 2]}
    )
    sweep_id = sweep["id"]
    first = wait_for(
        lambda: read_sweep(server, sweep_id)["points"][0]["job_id"], 30, "the first point's job"
    )
    server.wait_running(first)
    page.goto(f"{server.url}/#/sweep/{sweep_id}")
    expect(page.locator("#sweep-status .status")).to_have_text("running")
    expect(page.locator("#sweep-delete")).to_have_count(0)  # not while it runs
    asked = _accept_dialogs(page)
    page.click("#sweep-cancel")

    expect(page.locator("#sweep-status .status")).to_have_text("cancelled", timeout=END_TIMEOUT_MS)
    expect(page.locator("#sweep-cancel")).to_have_count(0)
    expect(page.locator("#sweep-delete")).to_be_visible()
    expect(page.locator("#sweep-error")).to_be_empty()
    assert len(asked) == 1 and sweep_id[:8] in asked[0], asked
    after = read_sweep(server, sweep_id)
    assert after["status"] == "cancelled", after
    assert all(p["status"] != "running" for p in after["points"]), after["points"]
    assert server.job(first)["status"] == "cancelled"
