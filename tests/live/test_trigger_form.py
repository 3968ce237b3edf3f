"""The ``s3pput_upload`` trigger form in a real browser: headless Chromium driven by Selenium.

Logs in to the live Airflow through the simple auth manager's login page, opens the DAG's
trigger form, checks that every param is rendered with its title, description and the widget
its type calls for, fills the form in, triggers, and follows the run to success through the
REST API. A screenshot of the filled-in form is saved to ``tests/live/artifacts/``.

The browser is Debian's ``chromium`` with its matching ``chromium-driver``
(``scripts/install-browser.sh``); without them the test skips with the reason.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.testing.live_airflow import LiveAirflow
from tests.helpers import list_keys

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT = 30.0
DAG_ID = "s3pput_upload"
#: screenshots and page sources of the browser, for a person to look at after a run
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

#: param name -> the widget the form must render for it
WIDGETS = {
    "source": "text",
    "bucket": "text",
    "prefix": "text",
    "put_mode": "dropdown",
    "dry_run": "switch",
    "limit": "number",
    "gzip": "switch",
    "content_type": "text",
    "headers": "lines",
    "grant": "dropdown",
    "delete": "switch",
    "batch_size": "number",
    "aws_conn_id": "text",
}

#: the open modal dialog (other elements with role=dialog are hidden popovers)
DIALOG = "[data-scope=dialog][role=dialog][data-state=open]"

#: the form's Trigger button
SUBMIT = "button[data-testid=trigger-dag-submit]"

#: For each field of the form: its param name, label, help text and widget kind. The form
#: renders one ``role=group`` field root per param; the widget's id carries the param name.
FIELDS_JS = """
const dialog = document.querySelector('__DIALOG__');
if (!dialog) return [];
const rows = [];
for (const root of dialog.querySelectorAll('[data-scope=field][data-part=root][role=group]')) {
  const label = root.querySelector('[data-part=label]');
  const helper = root.querySelector('[data-part=helper-text]');
  let name = null, kind = null, el;
  if ((el = root.querySelector('[id^="switch:element_"]'))) {
    name = el.id.slice('switch:element_'.length);
    kind = el.querySelector('input[type=checkbox]') ? 'switch' : 'switch?';
  } else if ((el = root.querySelector('[id^="number-input:element_"]'))) {
    name = el.id.slice('number-input:element_'.length);
    kind = el.querySelector('input[role=spinbutton]') ? 'number' : 'number?';
  } else if ((el = root.querySelector('textarea[id^="element_"]'))) {
    name = el.id.slice('element_'.length); kind = 'lines';
  } else if ((el = root.querySelector('input[id^="element_"]'))) {
    name = el.id.slice('element_'.length); kind = 'text';
  } else if ((el = root.querySelector('[id^="element_"]'))) {
    name = el.id.slice('element_'.length);
    kind = el.querySelector('input[role=combobox]') ? 'dropdown' : el.tagName.toLowerCase();
  }
  if (name === null) continue;
  const title = label ? label.textContent.replace('*', '').trim() : null;
  rows.push({name, kind, title, description: helper ? helper.textContent.trim() : null});
}
return rows;
""".replace("__DIALOG__", DIALOG)


def _browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is not installed (dev extra)"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return (
                f"{path} not found: run scripts/install-browser.sh (apt-get install chromium chromium-driver)"
            )
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    reason = _browser_missing()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,2300",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    # The Debian driver that matches the Debian browser; Selenium Manager never downloads one.
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(ARTIFACTS / "chromedriver.log"))
    ARTIFACTS.mkdir(exist_ok=True)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def short_source() -> Iterator[Path]:
    """A short SOURCE path, so that the screenshot of the form reads well."""
    path = Path(tempfile.mkdtemp(prefix="s3pput-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _wait(driver: Any, condition: Any, message: str) -> Any:
    """Wait for ``condition``; on a timeout keep a screenshot and the page for the post-mortem."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT, poll_frequency=0.2).until(condition, message)
    except TimeoutException:
        driver.save_screenshot(str(ARTIFACTS / "failure.png"))
        (ARTIFACTS / "failure.html").write_text(driver.page_source)
        raise


def _login(driver: Any, live: LiveAirflow) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    driver.get(f"{live.base_url}/dags/{DAG_ID}")
    user = _wait(driver, ec.visibility_of_element_located((By.NAME, "username")), "no login form")
    assert "/auth/login" in driver.current_url
    user.send_keys(live.username)
    driver.find_element(By.NAME, "password").send_keys(live.password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(driver, ec.url_contains(f"/dags/{DAG_ID}"), "login did not lead back to the DAG page")


def _open_trigger_form(driver: Any) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    button = _wait(
        driver,
        ec.element_to_be_clickable((By.CSS_SELECTOR, "button[aria-label='Trigger Dag']")),
        "no Trigger button on the DAG page",
    )
    button.click()
    dialog = _wait(
        driver,
        ec.visibility_of_element_located((By.CSS_SELECTOR, DIALOG)),
        "the Trigger button opened no dialog",
    )
    _wait(
        driver,
        lambda d: len(d.execute_script(FIELDS_JS)) == len(WIDGETS),
        "the trigger form did not render every param",
    )
    return dialog


def _type_into(element: Any, text: str) -> None:
    """Replace a React-controlled field's text the way a user does: select all, type.

    The form re-renders on every keystroke and, on a busy machine, a keystroke typed at
    WebDriver speed can be lost; so check the field and, if needed, type again key by key.
    """
    from selenium.webdriver.common.keys import Keys

    for attempt in range(3):
        element.click()
        element.send_keys(Keys.CONTROL, "a")
        element.send_keys(Keys.DELETE)
        if attempt == 0:
            element.send_keys(text)
        else:
            for char in text:
                element.send_keys(char)
        if element.get_attribute("value") == text:
            return
    raise AssertionError(f"the field holds {element.get_attribute('value')!r}, not {text!r}")


def _choose(driver: Any, name: str, option: str) -> None:
    """Pick ``option`` in the dropdown of param ``name``."""
    from selenium.webdriver.common.by import By

    control = driver.find_element(By.CSS_SELECTOR, f"#element_{name} input[role=combobox]")
    control.click()
    control.send_keys(option)
    item = _wait(
        driver,
        lambda d: next(
            (e for e in d.find_elements(By.CSS_SELECTOR, "[role=option]") if e.text.strip() == option), False
        ),
        f"no option {option!r} in the {name} dropdown",
    )
    item.click()


def _field_value(driver: Any, name: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.ID, f"element_{name}").text).strip()


def test_trigger_form_renders_params_and_triggers_a_run(
    live_airflow: LiveAirflow, browser: Any, bucket: str, s3_client: Any, short_source: Path
) -> None:
    from selenium.webdriver.common.by import By

    source = short_source / "exports"
    for i in range(7):
        (source / f"dir{i % 2}").mkdir(parents=True, exist_ok=True)
        (source / f"dir{i % 2}" / f"note-{i}.txt").write_text(f"typed into a form {i}\n")

    _login(browser, live_airflow)
    dialog = _open_trigger_form(browser)

    # Every param: the title and description the DAG gives it, in the widget its type calls for.
    params = live_airflow.api("GET", f"/dags/{DAG_ID}/details")["params"]
    assert set(params) == set(WIDGETS)
    fields = {row["name"]: row for row in browser.execute_script(FIELDS_JS)}
    assert set(fields) == set(WIDGETS)
    for name, spec in params.items():
        field = fields[name]
        assert field["title"] == spec["schema"]["title"], field
        assert field["description"] == spec["description"], field
        assert field["kind"] == WIDGETS[name], field
    assert _field_value(browser, "put_mode") == "update"  # the default, shown in the dropdown
    assert not browser.find_element(By.NAME, "element_dry_run").is_selected()

    # Fill it in as a user would: source, bucket, prefix, a mode from the dropdown, a header,
    # a small batch size so that the run maps several batches.
    _type_into(browser.find_element(By.ID, "element_source"), str(source))
    _type_into(browser.find_element(By.ID, "element_bucket"), bucket)
    _type_into(browser.find_element(By.ID, "element_prefix"), "browser")
    _choose(browser, "put_mode", "stupid")
    assert _field_value(browser, "put_mode") == "stupid"
    _type_into(browser.find_element(By.ID, "element_headers"), "x-amz-meta-via:browser")
    _type_into(browser.find_element(By.CSS_SELECTOR, "[id='number-input:element_batch_size'] input"), "3")

    trigger = dialog.find_element(By.CSS_SELECTOR, SUBMIT)
    _wait(browser, lambda d: trigger.is_enabled(), "the Trigger button stays disabled for a valid form")
    browser.execute_script("document.activeElement.blur()")  # leave the last field, as a user would
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'})", dialog)
    browser.save_screenshot(str(ARTIFACTS / "trigger-form.png"))

    before = {run["dag_run_id"] for run in _runs(live_airflow)}
    trigger.click()
    new_runs = _wait(
        browser,
        lambda d: [r for r in _runs(live_airflow) if r["dag_run_id"] not in before],
        "no DAG run was created by the form",
    )
    assert len(new_runs) == 1
    run = new_runs[0]
    assert run["run_type"] == "manual"
    conf = run["conf"]
    assert (conf["source"], conf["bucket"], conf["prefix"]) == (str(source), bucket, "browser")
    assert (conf["put_mode"], conf["batch_size"], conf["headers"]) == (
        "stupid",
        3,
        ["x-amz-meta-via:browser"],
    )
    assert (conf["dry_run"], conf["gzip"], conf["limit"], conf["delete"]) == (False, False, None, False)

    finished = live_airflow.wait_for_run(run["dag_run_id"])
    assert finished["state"] == "success", live_airflow.task_states(run["dag_run_id"])
    summary = live_airflow.xcom(run["dag_run_id"], "upload.reduce")
    assert (summary["files_put"], summary["files_failed"], summary["batches"]) == (7, 0, 3)
    landed = list_keys(s3_client, bucket)
    assert sorted(landed) == sorted(f"browser/dir{i % 2}/note-{i}.txt" for i in range(7))
    head = s3_client.head_object(Bucket=bucket, Key="browser/dir1/note-3.txt")
    assert head["Metadata"] == {"via": "browser"}

    # The run shows up as a success in the UI too.
    browser.get(f"{live_airflow.base_url}/dags/{DAG_ID}/runs/{run['dag_run_id']}")
    _wait(
        browser,
        lambda d: "success" in d.find_element(By.TAG_NAME, "body").text.lower(),
        "the run page does not show the run's success",
    )


def test_trigger_form_accepts_the_defaults_with_an_empty_prefix(
    live_airflow: LiveAirflow, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{live_airflow.base_url}/dags/{DAG_ID}")
    if "/auth/login" in browser.current_url:
        _login(browser, live_airflow)
    dialog = _open_trigger_form(browser)
    trigger = dialog.find_element(By.CSS_SELECTOR, SUBMIT)
    assert trigger.is_enabled(), "Trigger is disabled with the DAG's own defaults"


def _runs(live: LiveAirflow) -> list[dict[str, Any]]:
    body = live.api("GET", f"/dags/{DAG_ID}/dagRuns", params={"limit": 100, "order_by": "-run_after"})
    return list(body["dag_runs"])
