"""Drives Airflow's connection form in Debian's headless Chromium (selenium + /usr/bin/chromedriver), for
tests/e2e/test_connection_form.py (every Airflow line) and tests/e2e/test_production.py. It runs in
``.venv-prod`` (which has selenium; the provider's and the lines' venvs do not): ``python connection_form.py
plan.json`` prints what a person saw as JSON, and the test judges it. Every step waits for what it needs on
the page (a type's own fields, a section unfolded, a saved connection's values), never a fixed time.

The plan names the API server, the connection types to look at (with each one's extra field names), one
connection to save through the form (typed into its fields, the rest left at the form's defaults) and pages
to open; screenshots go to the plan's folder. With ``MODELREG_SCREENSHOTS=<dir>`` set, each inspected connection type's form is also saved
there as ``<connection type>.png`` (its Extra Fields open) and ``<connection type>-standard.png``: the docs'
service pages show them (docs/_static/connection-forms/).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

# Flags that work on a machine without a display, GPU or outside network.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,2600",
]

# Every field of the open dialog: its label, the element holding its value, and what a person sees.
FIELDS_JS = """
const dialog = document.querySelector('[role=dialog]');
return [...dialog.querySelectorAll('[data-part=root][role=group]')].map(group => {
  const label = group.querySelector('label[data-part=label]');
  const input = group.querySelector('[name]');
  // Airflow 3.0 draws an enum field as a select with no named element: its root's id names it.
  const select = group.querySelector('[data-scope=select][data-part=root][id^="select:"]');
  if (!label || !(input || select)) return null;
  const shown = group.getClientRects().length > 0;
  if (!input) return {label: label.innerText.replace('*', '').trim(), name: select.id.slice(7), type: 'select',
                      value: select.querySelector('[data-part=value-text]')?.innerText, shown, text: group.innerText};
  return {label: label.innerText.replace('*', '').trim(), name: input.name, type: input.type || input.tagName,
          value: input.value, shown, text: group.innerText};
}).filter(Boolean);
"""

# The names of the open dialog's extra fields (the connection type's own), wherever they sit.
EXTRA_NAMES_JS = """
const named = [...document.querySelectorAll('[role=dialog] [name^=element_]')].map(e => e.name);
const selects = [...document.querySelectorAll('[role=dialog] [data-scope=select][data-part=root][id^="select:element_"]')];
return [...named, ...selects.map(e => e.id.slice(7))];  // Airflow 3.0's enum fields are named by id only
"""

# Whether the accordion section of this trigger is open: each field group in it laid out, its unfolding done.
SECTION_SHOWN_JS = """
const trigger = arguments[0];
if (trigger.getAttribute('aria-expanded') !== 'true') return false;
const content = document.getElementById(trigger.getAttribute('aria-controls'));
if (!content || content.getClientRects().length === 0) return false;
const groups = [...content.querySelectorAll('[data-part=root][role=group]')];
return groups.every(g => g.getClientRects().length > 0)
  && content.getAnimations({subtree: true}).every(a => a.playState === 'finished');
"""


def browser(user_data_dir: str) -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in [*FLAGS, f"--user-data-dir={user_data_dir}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.implicitly_wait(0)
    return driver


class Form:
    def __init__(self, driver: WebDriver, base: str, shots: Path, extra_fields: dict[str, list[str]]) -> None:
        self.driver, self.base, self.shots = driver, base.rstrip("/"), shots
        self.extra_fields = extra_fields  # each connection type's (form label's) extra field names
        self.wait = WebDriverWait(driver, 30)

    def find(self, css: str) -> Any:
        return self.wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css)))

    def click_button(self, text: str) -> None:
        xpath = f"//button[normalize-space(.)={json.dumps(text)}]"
        self.wait.until(expected_conditions.element_to_be_clickable((By.XPATH, xpath))).click()

    def shot(self, name: str) -> None:
        self.driver.save_screenshot(str(self.shots / f"{name}.png"))

    def shot_dialog(self, path: Path) -> None:
        """The open dialog alone (the page around it says nothing about the form)."""
        self.find("[role=dialog]").screenshot(str(path))

    def open_new(self) -> None:
        self.driver.get(f"{self.base}/connections")
        # The first visit logs in (the simple auth manager); Airflow 3.1's login lands on the home page, not
        # on the page asked for: asked again then, logged in.
        add = "//button[normalize-space(.)='Add Connection']"
        connections_page = f"{self.base}/connections"

        def landed(d: WebDriver) -> str | None:
            url = d.current_url.split("?")[0].rstrip("/")
            if url == connections_page and d.find_elements(By.XPATH, add):
                return "connections"
            return "home" if url == self.base else None

        if self.wait.until(landed, "neither the connections page nor the home page") == "home":
            self.driver.get(connections_page)
        self.click_button("Add Connection")
        self.find("[role=dialog] input[name=connection_id]")

    def choose(self, combobox: Any, option: str) -> None:
        """Pick an option of a react-select box by its exact text, as a person would: type, then click."""
        combobox.click()
        combobox.send_keys(option)
        xpath = f"//*[@role='option'][normalize-space(.)={json.dumps(option)}]"
        self.wait.until(expected_conditions.element_to_be_clickable((By.XPATH, xpath))).click()

    def extra_names(self) -> set[str]:
        return set(self.driver.execute_script(EXTRA_NAMES_JS))

    def choose_type(self, label: str) -> None:
        """Pick the connection type; done when the dialog holds exactly that type's extra fields (the last
        type's are gone: React swaps them after the choice shows)."""
        self.choose(self.find("[role=dialog] input[role=combobox]"), label)
        wanted = {f"element_{name}" for name in self.extra_fields[label]}
        try:
            self.wait.until(lambda d: label in self.find("[role=dialog]").text and self.extra_names() == wanted)
        except TimeoutException:
            raise TimeoutException(
                f"{label}: extra fields {sorted(self.extra_names())}, not {sorted(wanted)}"
            ) from None

    def open_section(self, title: str) -> None:
        trigger = self.driver.find_elements(By.XPATH, f"//button[@data-part='item-trigger'][contains(., '{title}')]")
        if trigger and trigger[0].get_attribute("aria-expanded") != "true":
            trigger[0].click()
            # Open when the section's every field takes space on the page (its content unfolds after the click).
            self.wait.until(lambda d: d.execute_script(SECTION_SHOWN_JS, trigger[0]), f"section {title} never opened")

    def fields(self) -> list[dict[str, Any]]:
        return list(self.driver.execute_script(FIELDS_JS))

    def type_into(self, name: str, text: str) -> None:
        element = self.find(f"[role=dialog] [name={json.dumps(name)}]")
        element.send_keys(Keys.CONTROL, "a")
        element.send_keys(text)

    def paste_into(self, name: str, text: str) -> None:
        """Insert text as a paste does (the browser, not this script, decides what a one-line field keeps)."""
        element = self.find(f"[role=dialog] [name={json.dumps(name)}]")
        element.click()
        self.driver.execute_cdp_cmd("Input.insertText", {"text": text})

    def save(self, spec: dict[str, Any]) -> dict[str, Any]:
        self.open_new()
        self.type_into("connection_id", spec["conn_id"])
        self.choose_type(spec["label"])
        for name, value in spec.get("standard", {}).items():  # "Standard Fields" is the open section
            self.type_into(name, value)
        self.open_section("Extra Fields")
        for name, option in spec.get("choose", {}).items():
            box = self.find(f"[role=dialog] input[type=hidden][name=element_{name}]")
            self.choose(box.find_element(By.XPATH, "./ancestor::*[@role='group'][1]//input[@role='combobox']"), option)
        for name, value in spec.get("extra", {}).items():
            self.type_into(f"element_{name}", value)
        for name, value in spec.get("paste", {}).items():
            self.paste_into(f"element_{name}", value)
        before = self.fields()
        self.shot("save-filled")
        self.click_button("Save")
        try:
            WebDriverWait(self.driver, 20).until_not(
                expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "[role=dialog]"))
            )
            closed = True
        except TimeoutException:
            closed = False
        self.shot("save-done")
        return {
            "closed": closed,
            "fields_before_save": before,
            "page_text": self.driver.find_element(By.TAG_NAME, "body").text,
        }

    def edit(self, conn_id: str, typed: dict[str, str]) -> dict[str, Any]:
        """The saved connection's edit form: its fields and the whole page source (to look for secrets)."""
        if not self.driver.current_url.rstrip("/").endswith("/connections"):
            self.driver.get(f"{self.base}/connections")  # after a save the list is already shown
        row = self.wait.until(
            expected_conditions.presence_of_element_located(
                (By.XPATH, f"//tr[.//*[normalize-space(.)={json.dumps(conn_id)}]]")
            )
        )
        row.find_element(By.XPATH, ".//button[@aria-label='Edit Connection' or contains(@aria-label, 'Edit')]").click()
        self.find("[role=dialog] input[name=connection_id]")
        self.open_section("Extra Fields")
        # The form is filled from the saved connection: done when each typed field shows what was typed.
        self.wait.until(
            lambda d: all(
                d.find_element(By.CSS_SELECTOR, f"[role=dialog] [name={json.dumps(f'element_{name}')}]").get_attribute(
                    "value"
                )
                == value
                for name, value in typed.items()
            )
        )
        self.shot("edit")
        return {"fields": self.fields(), "page_source": self.driver.page_source}


def type_screenshots() -> tuple[Path, dict[str, str]] | None:
    """Where the docs' per-type form screenshots go, and each form's label -> connection type (or None)."""
    folder = os.environ.get("MODELREG_SCREENSHOTS")
    if not folder:
        return None
    from airflow_provider_modelreg.get_provider_info import CONNECTION_TYPES  # stdlib only; .venv-prod has it

    Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(folder), {d["hook-name"]: d["connection-type"] for d in CONNECTION_TYPES}


def main(plan_path: str) -> None:
    plan = json.loads(Path(plan_path).read_text())
    shots = Path(plan["screenshots"])
    shots.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"forms": {}, "pages": {}}
    for_docs = type_screenshots()
    started = time.monotonic()
    profile = tempfile.mkdtemp(prefix="modelreg-chromium-")
    driver = browser(profile)
    print(f"{time.monotonic() - started:.1f}s Chromium started", file=sys.stderr)
    if for_docs:  # tall enough for the longest form (OCI's) to be shot whole
        driver.set_window_size(1400, 4200)
    try:
        form = Form(driver, plan["base"], shots, plan["extra_fields"])
        for n, label in enumerate(plan.get("inspect", [])):
            if n == 0:
                form.open_new()
            form.choose_type(label)  # one dialog, its type changed as a person would
            form.open_section("Standard Fields")
            standard = form.fields()
            if for_docs and label in for_docs[1]:
                form.shot_dialog(for_docs[0] / f"{for_docs[1][label]}-standard.png")
            form.open_section("Extra Fields")
            extra = form.fields()
            if for_docs and label in for_docs[1]:
                form.shot_dialog(for_docs[0] / f"{for_docs[1][label]}.png")
            if plan.get("every_screenshot"):
                form.shot(f"type-{label}")
            # Each field as shown in the section that holds it (one section is open at a time).
            result["forms"][label] = [f for f in standard if not f["name"].startswith("element_")] + [
                f for f in extra if f["name"].startswith("element_")
            ]
            print(f"{time.monotonic() - started:.1f}s {label}", file=sys.stderr)
        if spec := plan.get("save"):
            result["save"] = form.save(spec)
            result["edit"] = form.edit(spec["conn_id"], spec.get("extra", {}))
        for name, url in plan.get("open", {}).items():
            driver.get(url)
            if wanted := plan.get("open_wait_for", {}).get(name):
                with contextlib.suppress(TimeoutException):  # the test judges the text either way
                    WebDriverWait(driver, 30).until(lambda d, w=wanted: w in d.find_element(By.TAG_NAME, "body").text)
            form.shot(f"page-{name}")
            result["pages"][name] = {"title": driver.title, "text": driver.find_element(By.TAG_NAME, "body").text}
    except Exception as exc:  # the test shows what went wrong, with the screenshot of that moment
        driver.save_screenshot(str(shots / "error.png"))
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        driver.quit()  # Chromium has exited: its profile can go (a run leaves nothing behind)
        shutil.rmtree(profile, ignore_errors=True)
    result["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
